//! Writes to task rows: creation under the queue bound, compare-and-set transitions with their
//! history and status counters, and cancellation. Each is one `BEGIN IMMEDIATE` transaction
//! whose conditions live in the SQL (`WHERE status = ?`, `WHERE n < ?`), never in a value read
//! earlier.

use ao_core::Reason;
use ao_core::lifecycle::{TaskStatus, check_transition};
use ao_core::store::{Created, StoreError, StoreResult, Transition};
use ao_core::task::{NewTask, Task, TaskId, TaskResult};
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::row::{self, task_columns, ts};
use crate::{SqliteStore, begin_write, db_err};

/// Label rows per INSERT statement (3 parameters each), well under SQLite's parameter limit.
const LABEL_CHUNK: usize = 200;

async fn by_key(conn: &mut SqliteConnection, key: &str) -> StoreResult<Option<Task>> {
    const SQL: &str = concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE idempotency_key = ?"
    );
    let row = sqlx::query(SQL)
        .bind(key)
        .fetch_optional(conn)
        .await
        .map_err(db_err)?;
    row.as_ref().map(row::task).transpose()
}

/// The answer to a repeated idempotency key.
fn repeat_of(earlier: Task, new: &NewTask) -> StoreResult<Created> {
    if earlier.request_hash == new.request_hash {
        Ok(Created::Existing(earlier))
    } else {
        Err(StoreError::IdempotencyConflict)
    }
}

async fn record(
    conn: &mut SqliteConnection,
    id: TaskId,
    from: Option<TaskStatus>,
    to: TaskStatus,
    reason: &Reason,
    at: DateTime<Utc>,
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

/// Move one task from `from` to `to` in the status counters.
async fn count_move(
    conn: &mut SqliteConnection,
    from: TaskStatus,
    to: TaskStatus,
) -> StoreResult<()> {
    sqlx::query("UPDATE task_counts SET n = n - 1 WHERE status = ?")
        .bind(from.as_str())
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    sqlx::query(
        "INSERT INTO task_counts (status, n) VALUES (?, 1) \
         ON CONFLICT (status) DO UPDATE SET n = n + 1",
    )
    .bind(to.as_str())
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn insert_labels(conn: &mut SqliteConnection, new: &NewTask) -> StoreResult<()> {
    let labels: Vec<(&String, &String)> = new.spec.labels.iter().collect();
    for chunk in labels.chunks(LABEL_CHUNK) {
        let mut b: QueryBuilder<Sqlite> =
            QueryBuilder::new("INSERT INTO task_labels (task_id, key, value) ");
        b.push_values(chunk, |mut row, (k, v)| {
            row.push_bind(new.id.to_string())
                .push_bind(k.as_str())
                .push_bind(v.as_str());
        });
        b.build().execute(&mut *conn).await.map_err(db_err)?;
    }
    Ok(())
}

impl SqliteStore {
    pub(crate) async fn insert(&self, new: NewTask, max_queued: usize) -> StoreResult<Created> {
        let mut conn = self.write_conn(true).await?;
        let mut tx = begin_write(&mut conn).await?;
        if let Some(key) = &new.idempotency_key
            && let Some(earlier) = by_key(&mut tx, key).await?
        {
            return repeat_of(earlier, &new);
        }
        // Take a queue slot: the check and the increment are one statement.
        let bound = i64::try_from(max_queued).unwrap_or(i64::MAX);
        let slot =
            sqlx::query("UPDATE task_counts SET n = n + 1 WHERE status = 'queued' AND n < ?")
                .bind(bound)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        if slot.rows_affected() == 0 {
            return Err(StoreError::QueueFull { limit: max_queued });
        }
        const SQL: &str = concat!(
            "INSERT INTO tasks (id, status, reason, spec, created_at, idempotency_key, request_hash) \
             VALUES (?, 'queued', 'submitted', ?, ?, ?, ?) \
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING ",
            task_columns!()
        );
        let spec = serde_json::to_string(&new.spec).map_err(StoreError::backend)?;
        let inserted = sqlx::query(SQL)
            .bind(new.id.to_string())
            .bind(spec)
            .bind(ts(new.created_at))
            .bind(&new.idempotency_key)
            .bind(&new.request_hash)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        let Some(inserted) = inserted else {
            // The key was taken after our check (only a backend without a write lock can get
            // here): give the slot back and answer as for a repeated key.
            drop(tx);
            return Box::pin(self.insert(new, max_queued)).await;
        };
        let task = row::task(&inserted)?;
        insert_labels(&mut tx, &new).await?;
        record(
            &mut tx,
            new.id,
            None,
            TaskStatus::Queued,
            &Reason::Submitted,
            new.created_at,
        )
        .await?;
        tx.commit().await.map_err(db_err)?;
        self.changes.notify_task(task.id);
        Ok(Created::New(task))
    }

    pub(crate) async fn apply(
        &self,
        id: TaskId,
        from: TaskStatus,
        t: Transition,
    ) -> StoreResult<Task> {
        check_transition(from, t.to)?;
        if let Some(fence) = t.fence {
            // One process owns a SQLite file: it keeps no leases, so no fence is current.
            return Err(StoreError::Fenced { fence });
        }
        const SQL: &str = concat!(
            "UPDATE tasks SET status = ?, reason = ?, message = ?, \
               started_at = COALESCE(?, started_at), finished_at = COALESCE(?, finished_at), \
               worker_runtime = CASE WHEN ? THEN NULL ELSE COALESCE(?, worker_runtime) END, \
               worker_name = CASE WHEN ? THEN NULL ELSE COALESCE(?, worker_name) END, \
               exit_code = COALESCE(?, exit_code) \
             WHERE id = ? AND status = ? RETURNING ",
            task_columns!()
        );
        let at = ts(t.at);
        let started = (t.to == TaskStatus::Running).then(|| at.clone());
        let finished = t.to.is_terminal().then(|| at.clone());
        // Requeueing forgets the worker; other moves keep it unless a new one is given.
        let clear_worker = t.to == TaskStatus::Queued;
        let mut conn = self.write_conn(t.to.is_terminal()).await?;
        let mut tx = begin_write(&mut conn).await?;
        let updated = sqlx::query(SQL)
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
            .bind(from.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        let Some(updated) = updated else {
            return Err(lost_race(&mut tx, id, from).await);
        };
        let task = row::task(&updated)?;
        count_move(&mut tx, from, t.to).await?;
        record(&mut tx, id, Some(from), t.to, &t.reason, t.at).await?;
        tx.commit().await.map_err(db_err)?;
        self.changes.notify_task(id);
        Ok(task)
    }

    /// Cancel at once if queued, else flag an active task; retried when the task moved
    /// between the two conditional writes (each retry means another writer progressed).
    pub(crate) async fn cancel(&self, id: TaskId) -> StoreResult<Task> {
        const FLAG: &str = concat!(
            "UPDATE tasks SET cancel_requested = 1 \
             WHERE id = ? AND status IN ('starting', 'running') RETURNING ",
            task_columns!()
        );
        loop {
            let now = Transition::new(TaskStatus::Cancelled, Reason::CancelledByUser);
            match self.apply(id, TaskStatus::Queued, now).await {
                Err(StoreError::StatusChanged { actual, .. }) if actual.is_terminal() => {
                    return Err(StoreError::AlreadyFinished(actual));
                }
                Err(StoreError::StatusChanged { .. }) => {}
                other => return other,
            }
            let flagged = sqlx::query(FLAG)
                .bind(id.to_string())
                .fetch_optional(&self.writer)
                .await
                .map_err(db_err)?;
            if let Some(row) = flagged {
                self.changes.notify_task(id);
                return row::task(&row);
            }
        }
    }

    pub(crate) async fn store_result(&self, id: TaskId, result: &TaskResult) -> StoreResult<()> {
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
        self.changes.notify_task(id);
        Ok(())
    }

    pub(crate) async fn store_token_hash(&self, id: TaskId, hash: &str) -> StoreResult<()> {
        sqlx::query("UPDATE tasks SET worker_token_hash = ? WHERE id = ?")
            .bind(hash)
            .bind(id.to_string())
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}

/// Why a compare-and-set matched no row: the task is gone or in another status.
async fn lost_race(conn: &mut SqliteConnection, id: TaskId, expected: TaskStatus) -> StoreError {
    let actual = sqlx::query_scalar::<_, String>("SELECT status FROM tasks WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(conn)
        .await;
    match actual {
        Ok(None) => StoreError::NotFound,
        Ok(Some(s)) => match row::status(&s) {
            Ok(actual) => StoreError::StatusChanged { expected, actual },
            Err(e) => e,
        },
        Err(e) => db_err(e),
    }
}
