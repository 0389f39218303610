CREATE TABLE tasks (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT    NOT NULL UNIQUE,
    status            TEXT    NOT NULL,
    reason            TEXT    NOT NULL,
    message           TEXT,
    spec              TEXT    NOT NULL,
    created_at        TEXT    NOT NULL,
    started_at        TEXT,
    finished_at       TEXT,
    worker_runtime    TEXT,
    worker_name       TEXT,
    exit_code         INTEGER,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    result            TEXT,
    idempotency_key   TEXT UNIQUE,
    request_hash      TEXT    NOT NULL,
    worker_token_hash TEXT
);
CREATE INDEX tasks_status_seq ON tasks (status, seq);

CREATE TABLE task_labels (
    task_id TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (task_id, key)
) WITHOUT ROWID;
CREATE INDEX task_labels_kv ON task_labels (key, value);

CREATE TABLE task_transitions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     TEXT NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX task_transitions_task ON task_transitions (task_id, id);

CREATE TABLE task_logs (
    task_id TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    line    TEXT    NOT NULL,
    at      TEXT    NOT NULL,
    PRIMARY KEY (task_id, seq)
) WITHOUT ROWID;

CREATE TABLE task_events (
    task_id TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    event   TEXT    NOT NULL,
    at      TEXT    NOT NULL,
    PRIMARY KEY (task_id, seq)
) WITHOUT ROWID;
