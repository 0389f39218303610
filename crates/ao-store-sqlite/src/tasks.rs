//! Task rows: creation under the queue bound, compare-and-set transitions, listing.

use ao_core::Reason;
use ao_core::lifecycle::{TaskStatus, check_transition};
use ao_core::store::{
    Created, EventRecord, ListQuery, LogLine, Page, StoreError, StoreResult, TaskStore, Transition,
};
use ao_core::task::{NewTask, Task, TaskId, TaskResult, TransitionRecord};
use async_trait::async_trait;
use chrono::Utc;
use sqlx::{AssertSqlSafe, Connection, QueryBuilder, Row, Sqlite, SqliteConnection};
use tokio::sync::watch;

use crate::row::{self, TASK_COLUMNS, ts};
use crate::{SqliteStore, db_err, durable, output};

async fn fetch(conn: &mut SqliteConnection, id: TaskId) -> StoreResult<Option<Task>> {
    let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?");
    let row = sqlx::query(AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(conn)
        .await
        .map_err(db_err)?;
    row.as_ref().map(row::task).transpose()
}

async fn record(
    conn: &mut SqliteConnection,
    id: TaskId,
    from: Option<TaskStatus>,
    to: TaskStatus,
    reason: &Reason,
    at: chrono::DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO task_transitions (task_id, from_status, to_status, reason, at) VALUES (?, ?, ?, ?, ?)")
        .bind(id.to_string())
        .bind(from.map(|s| s.as_str()))
        .bind(to.as_str())
        .bind(reason.as_string())
        .bind(ts(at))
        .execute(conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

impl SqliteStore {
    async fn insert(&self, new: NewTask, max_queued: usize) -> StoreResult<Created> {
        let mut conn = durable::writer(&self.writer, true).await?;
        let mut tx = conn.begin().await.map_err(db_err)?;
        if let Some(key) = &new.idempotency_key {
            let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE idempotency_key = ?");
            let existing = sqlx::query(AssertSqlSafe(sql))
                .bind(key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            if let Some(row) = existing {
                let task = row::task(&row)?;
                return if task.request_hash == new.request_hash {
                    Ok(Created::Existing(task))
                } else {
                    Err(StoreError::IdempotencyConflict)
                };
            }
        }
        let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tasks WHERE status = 'queued'")
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if usize::try_from(queued).unwrap_or(usize::MAX) >= max_queued {
            return Err(StoreError::QueueFull { limit: max_queued });
        }
        let spec = serde_json::to_string(&new.spec).map_err(StoreError::backend)?;
        sqlx::query(
            "INSERT INTO tasks (id, status, reason, spec, created_at, idempotency_key, request_hash) \
             VALUES (?, 'queued', 'submitted', ?, ?, ?, ?)",
        )
        .bind(new.id.to_string())
        .bind(spec)
        .bind(ts(new.created_at))
        .bind(&new.idempotency_key)
        .bind(&new.request_hash)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        for (k, v) in &new.spec.labels {
            sqlx::query("INSERT INTO task_labels (task_id, key, value) VALUES (?, ?, ?)")
                .bind(new.id.to_string())
                .bind(k)
                .bind(v)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        record(
            &mut tx,
            new.id,
            None,
            TaskStatus::Queued,
            &Reason::Submitted,
            new.created_at,
        )
        .await?;
        let task = fetch(&mut tx, new.id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(db_err)?;
        self.changes.bump();
        Ok(Created::New(task))
    }

    async fn apply(&self, id: TaskId, from: TaskStatus, t: Transition) -> StoreResult<Task> {
        check_transition(from, t.to)?;
        let mut conn = durable::writer(&self.writer, t.to.is_terminal()).await?;
        let mut tx = conn.begin().await.map_err(db_err)?;
        let current = fetch(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        if current.status != from {
            return Err(StoreError::StatusChanged {
                expected: from,
                actual: current.status,
            });
        }
        let at = ts(t.at);
        let started = (t.to == TaskStatus::Running).then(|| at.clone());
        let finished = t.to.is_terminal().then(|| at.clone());
        // Requeueing forgets the worker; other moves keep it unless a new one is given.
        let clear_worker = t.to == TaskStatus::Queued;
        sqlx::query(
            "UPDATE tasks SET status = ?, reason = ?, message = ?, \
               started_at = COALESCE(?, started_at), finished_at = COALESCE(?, finished_at), \
               worker_runtime = CASE WHEN ? THEN NULL ELSE COALESCE(?, worker_runtime) END, \
               worker_name = CASE WHEN ? THEN NULL ELSE COALESCE(?, worker_name) END, \
               exit_code = COALESCE(?, exit_code) \
             WHERE id = ?",
        )
        .bind(t.to.as_str())
        .bind(t.reason.as_string())
        .bind(&t.message)
        .bind(started)
        .bind(finished)
        .bind(clear_worker)
        .bind(t.worker.as_ref().map(|w| w.runtime.clone()))
        .bind(clear_worker)
        .bind(t.worker.as_ref().map(|w| w.name.clone()))
        .bind(t.exit_code)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        record(&mut tx, id, Some(from), t.to, &t.reason, t.at).await?;
        let task = fetch(&mut tx, id).await?.ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(db_err)?;
        self.changes.bump();
        Ok(task)
    }

    async fn cancel(&self, id: TaskId) -> StoreResult<Task> {
        let current = self.get(id).await?.ok_or(StoreError::NotFound)?;
        match current.status {
            TaskStatus::Queued => {
                let t = Transition::new(TaskStatus::Cancelled, Reason::CancelledByUser);
                match self.apply(id, TaskStatus::Queued, t).await {
                    // Picked up by the scheduler meanwhile: flag it instead.
                    Err(StoreError::StatusChanged { .. }) => Box::pin(self.cancel(id)).await,
                    other => other,
                }
            }
            s if s.is_terminal() => Err(StoreError::AlreadyFinished(s)),
            _ => {
                let mut conn = self.writer.acquire().await.map_err(db_err)?;
                let done = sqlx::query(
                    "UPDATE tasks SET cancel_requested = 1 WHERE id = ? AND status IN ('starting', 'running')",
                )
                .bind(id.to_string())
                .execute(&mut *conn)
                .await
                .map_err(db_err)?;
                let task = fetch(&mut conn, id).await?.ok_or(StoreError::NotFound)?;
                if done.rows_affected() == 0 && task.status.is_terminal() {
                    return Err(StoreError::AlreadyFinished(task.status));
                }
                self.changes.bump();
                Ok(task)
            }
        }
    }

    async fn page(&self, q: &ListQuery) -> StoreResult<Page> {
        let cursor: Option<i64> = match &q.cursor {
            Some(c) => Some(c.parse().map_err(|_| StoreError::InvalidCursor)?),
            None => None,
        };
        let mut b: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("SELECT {TASK_COLUMNS} FROM tasks WHERE 1 = 1"));
        if let Some(s) = q.status {
            b.push(" AND status = ").push_bind(s.as_str());
        }
        for (k, v) in &q.labels {
            b.push(
                " AND EXISTS (SELECT 1 FROM task_labels l WHERE l.task_id = tasks.id AND l.key = ",
            )
            .push_bind(k.clone())
            .push(" AND l.value = ")
            .push_bind(v.clone())
            .push(")");
        }
        if let Some(c) = cursor {
            b.push(" AND seq < ").push_bind(c);
        }
        let limit = q.limit.max(1);
        b.push(" ORDER BY seq DESC LIMIT ")
            .push_bind((limit + 1) as i64);
        let rows = b.build().fetch_all(&self.reader).await.map_err(db_err)?;
        let mut items = Vec::with_capacity(rows.len());
        let mut last_seq = None;
        for r in rows.iter().take(limit) {
            items.push(row::task(r)?);
            last_seq = Some(r.try_get::<i64, _>("seq").map_err(db_err)?);
        }
        let next_cursor = (rows.len() > limit)
            .then(|| last_seq.map(|s| s.to_string()))
            .flatten();
        Ok(Page { items, next_cursor })
    }

    async fn by_status(&self, statuses: &str, limit: Option<usize>) -> StoreResult<Vec<Task>> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE status IN ({statuses}) ORDER BY seq ASC LIMIT ?"
        );
        let limit = limit.map_or(-1, |l| l as i64);
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(&self.reader)
            .await
            .map_err(db_err)?;
        rows.iter().map(row::task).collect()
    }
}

#[async_trait]
impl TaskStore for SqliteStore {
    async fn create(&self, task: NewTask, max_queued: usize) -> StoreResult<Created> {
        self.insert(task, max_queued).await
    }

    async fn get(&self, id: TaskId) -> StoreResult<Option<Task>> {
        let mut conn = self.reader.acquire().await.map_err(db_err)?;
        fetch(&mut conn, id).await
    }

    async fn list(&self, query: &ListQuery) -> StoreResult<Page> {
        self.page(query).await
    }

    async fn history(&self, id: TaskId) -> StoreResult<Vec<TransitionRecord>> {
        let rows = sqlx::query("SELECT from_status, to_status, reason, at FROM task_transitions WHERE task_id = ? ORDER BY id")
            .bind(id.to_string())
            .fetch_all(&self.reader)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let from: Option<String> = r.try_get("from_status").map_err(db_err)?;
                Ok(TransitionRecord {
                    from: from.as_deref().map(row::status).transpose()?,
                    to: row::status(&r.try_get::<String, _>("to_status").map_err(db_err)?)?,
                    reason: Reason::parse(&r.try_get::<String, _>("reason").map_err(db_err)?),
                    at: row::parse_ts(&r.try_get::<String, _>("at").map_err(db_err)?)?,
                })
            })
            .collect()
    }

    async fn transition(&self, id: TaskId, from: TaskStatus, t: Transition) -> StoreResult<Task> {
        self.apply(id, from, t).await
    }

    async fn request_cancel(&self, id: TaskId) -> StoreResult<Task> {
        self.cancel(id).await
    }

    async fn queued(&self, limit: usize) -> StoreResult<Vec<Task>> {
        self.by_status("'queued'", Some(limit)).await
    }

    async fn active(&self) -> StoreResult<Vec<Task>> {
        self.by_status("'starting', 'running'", None).await
    }

    async fn count_by_status(&self) -> StoreResult<Vec<(TaskStatus, u64)>> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM tasks GROUP BY status")
            .fetch_all(&self.reader)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let s = row::status(&r.try_get::<String, _>("status").map_err(db_err)?)?;
                Ok((s, r.try_get::<i64, _>("n").map_err(db_err)? as u64))
            })
            .collect()
    }

    async fn set_worker_token_hash(&self, id: TaskId, hash: &str) -> StoreResult<()> {
        sqlx::query("UPDATE tasks SET worker_token_hash = ? WHERE id = ?")
            .bind(hash)
            .bind(id.to_string())
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn worker_token_hash(&self, id: TaskId) -> StoreResult<Option<String>> {
        sqlx::query_scalar::<_, Option<String>>("SELECT worker_token_hash FROM tasks WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .map(Option::flatten)
            .map_err(db_err)
    }

    async fn set_result(&self, id: TaskId, result: &TaskResult) -> StoreResult<()> {
        let json = serde_json::to_string(result).map_err(StoreError::backend)?;
        let done = sqlx::query("UPDATE tasks SET result = ? WHERE id = ?")
            .bind(json)
            .bind(id.to_string())
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.changes.bump();
        Ok(())
    }

    async fn append_logs(&self, id: TaskId, lines: &[String]) -> StoreResult<()> {
        output::append(
            self,
            "task_logs",
            "line",
            id,
            lines.iter().map(String::as_str),
        )
        .await?;
        Ok(())
    }

    async fn logs(&self, id: TaskId, after: i64, limit: usize) -> StoreResult<Vec<LogLine>> {
        let rows = output::read(self, "task_logs", "line", id, after, limit).await?;
        Ok(rows
            .into_iter()
            .map(|(seq, line, at)| LogLine { seq, line, at })
            .collect())
    }

    async fn log_count(&self, id: TaskId) -> StoreResult<i64> {
        output::last_seq(&self.reader, "task_logs", id).await
    }

    async fn append_events(&self, id: TaskId, events: &[serde_json::Value]) -> StoreResult<i64> {
        let texts: Vec<String> = events.iter().map(|e| e.to_string()).collect();
        output::append(
            self,
            "task_events",
            "event",
            id,
            texts.iter().map(String::as_str),
        )
        .await
    }

    async fn events(&self, id: TaskId, after: i64, limit: usize) -> StoreResult<Vec<EventRecord>> {
        let rows = output::read(self, "task_events", "event", id, after, limit).await?;
        rows.into_iter()
            .map(|(seq, text, at)| {
                let event = serde_json::from_str(&text).map_err(StoreError::backend)?;
                Ok(EventRecord { seq, event, at })
            })
            .collect()
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}
