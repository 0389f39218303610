-- Counters kept in the same transaction as the rows they count, so that no write has to
-- count or scan rows under the write lock (see ao_core::store's contract).

-- Tasks per status: the queue bound and the status gauges read this, not COUNT(*).
CREATE TABLE task_counts (
    status TEXT    PRIMARY KEY,
    n      INTEGER NOT NULL CHECK (n >= 0)
) WITHOUT ROWID;
INSERT INTO task_counts (status, n) VALUES
    ('queued', 0), ('starting', 0), ('running', 0), ('succeeded', 0),
    ('failed', 0), ('cancelled', 0), ('timed_out', 0);
UPDATE task_counts SET n = (SELECT COUNT(*) FROM tasks WHERE tasks.status = task_counts.status);

-- The last sequence number of each task's log lines and events: an append reserves its
-- range by bumping the counter with RETURNING, instead of reading MAX(seq).
ALTER TABLE tasks ADD COLUMN log_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN event_seq INTEGER NOT NULL DEFAULT 0;
UPDATE tasks SET
    log_seq = COALESCE((SELECT MAX(seq) FROM task_logs WHERE task_id = tasks.id), 0),
    event_seq = COALESCE((SELECT MAX(seq) FROM task_events WHERE task_id = tasks.id), 0);
