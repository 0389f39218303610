-- Usage reports read the tasks finished since a day (TaskStore::finished_since): index the
-- finish time so that costs follow the window, not the table.
CREATE INDEX tasks_finished_at ON tasks (finished_at) WHERE finished_at IS NOT NULL;
