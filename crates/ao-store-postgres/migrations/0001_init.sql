-- The PostgreSQL task store (crates/ao-store-postgres). Same columns and counters as the
-- SQLite store, in PostgreSQL's own types: uuid ids, timestamptz times (microseconds), the
-- spec as jsonb (its labels indexed for containment filters).

CREATE TABLE tasks (
    seq               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id                UUID        NOT NULL UNIQUE,
    status            TEXT        NOT NULL,
    reason            TEXT        NOT NULL,
    message           TEXT,
    spec              JSONB       NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    started_at        TIMESTAMPTZ,
    finished_at       TIMESTAMPTZ,
    worker_runtime    TEXT,
    worker_name       TEXT,
    exit_code         INTEGER,
    cancel_requested  BOOLEAN     NOT NULL DEFAULT false,
    -- The result as JSON text (it may hold any string the agent wrote, which jsonb would
    -- refuse for U+0000); its cost apart, for usage reports.
    result            TEXT,
    cost_usd          DOUBLE PRECISION,
    idempotency_key   TEXT UNIQUE,
    request_hash      TEXT        NOT NULL,
    worker_token_hash TEXT,
    -- The last sequence number of the task's log lines and events: an append reserves its
    -- range by bumping the counter with RETURNING (the row lock orders racing appends).
    log_seq           BIGINT      NOT NULL DEFAULT 0,
    event_seq         BIGINT      NOT NULL DEFAULT 0
);
CREATE INDEX tasks_status_seq ON tasks (status, seq);
-- Label filters are one containment test (`spec->'labels' @> $1`), whatever their number.
CREATE INDEX tasks_labels ON tasks USING gin ((spec -> 'labels') jsonb_path_ops);
-- Usage reports read the tasks finished since a time (TaskStore::finished_since).
CREATE INDEX tasks_finished_at ON tasks (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE task_transitions (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id     UUID        NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    from_status TEXT,
    to_status   TEXT        NOT NULL,
    reason      TEXT        NOT NULL,
    at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX task_transitions_task ON task_transitions (task_id, id);

-- Log lines as bytes: worker output may hold U+0000, which text columns refuse.
CREATE TABLE task_logs (
    task_id UUID        NOT NULL,
    seq     BIGINT      NOT NULL,
    line    BYTEA       NOT NULL,
    at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (task_id, seq)
);

-- Events as JSON text, exactly as the worker sent them.
CREATE TABLE task_events (
    task_id UUID        NOT NULL,
    seq     BIGINT      NOT NULL,
    event   TEXT        NOT NULL,
    at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (task_id, seq)
);

-- Tasks per status, kept in the same transaction as every status change: the queue bound
-- and the status gauges read this, never COUNT(*).
CREATE TABLE task_counts (
    status TEXT   PRIMARY KEY,
    n      BIGINT NOT NULL CHECK (n >= 0)
);
INSERT INTO task_counts (status, n) VALUES
    ('queued', 0), ('starting', 0), ('running', 0), ('succeeded', 0),
    ('failed', 0), ('cancelled', 0), ('timed_out', 0);

-- Leases (ao_core::lease): which replica runs the scheduler, with a fencing generation.
CREATE TABLE leases (
    name       TEXT        PRIMARY KEY,
    holder     TEXT        NOT NULL,
    generation BIGINT      NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
