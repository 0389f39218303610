//! Writes to task rows: creation under the queue bound, compare-and-set transitions with their
//! history and status counters, cancellation, results and token hashes. Each runs inside the
//! writer's batch transaction (see `writer`), in its own savepoint, and its conditions live in
//! the SQL (`WHERE status = ?`, `WHERE n < ?`), never in a value read earlier, so it is
//! correct whichever connection's transaction it shares.

use ao_core::Reason;
use ao_core::lifecycle::{TaskStatus, check_transition};
use ao_core::store::{Created, StoreError, StoreResult, Transition};
use ao_core::task::{NewTask, Task, TaskId};
use sqlx::SqliteConnection;

use crate::db_err;
use crate::row::{self, task_columns, ts};

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

/// Store a new task in `queued` under the queue bound, inside the batch's transaction; `spec`
/// is the task's spec as JSON (serialized by the caller, off the writer).
pub(crate) async fn create(
    conn: &mut SqliteConnection,
    new: &NewTask,
    spec: &str,
    max_queued: usize,
) -> StoreResult<Created> {
    if let Some(key) = &new.idempotency_key
        && let Some(earlier) = by_key(conn, key).await?
    {
        return Created::repeat_of(earlier, new);
    }
    // One round trip to the writer's connection: the insert happens only below the bound,
    // and each later statement only if the one before it changed a row (`changes()`), so
    // the slot, the history row and the labels come with the task or not at all.
    const SQL: &str = concat!(
        "INSERT INTO tasks (id, status, reason, spec, created_at, idempotency_key, request_hash) \
         SELECT ?, 'queued', 'submitted', ?, ?, ?, ? \
         WHERE (SELECT n FROM task_counts WHERE status = 'queued') < ? RETURNING ",
        task_columns!(),
        "; UPDATE task_counts SET n = n + 1 WHERE status = 'queued' AND changes() = 1; \
         INSERT INTO task_transitions (task_id, from_status, to_status, reason, at) \
         SELECT ?, NULL, 'queued', ?, ? WHERE changes() = 1; \
         INSERT INTO task_labels (task_id, key, value) \
         SELECT ?, key, value FROM json_each(?) WHERE changes() = 1"
    );
    let bound = i64::try_from(max_queued).unwrap_or(i64::MAX);
    let (id, at) = (new.id.to_string(), ts(new.created_at));
    let labels = serde_json::to_string(&new.spec.labels).map_err(StoreError::backend)?;
    // The key was looked up in this transaction, which holds the write lock, so the insert
    // cannot collide on it; if the database broke that promise, it fails as a backend error.
    let rows = sqlx::query(SQL)
        .bind(&id)
        .bind(spec)
        .bind(&at)
        .bind(&new.idempotency_key)
        .bind(&new.request_hash)
        .bind(bound)
        .bind(&id)
        .bind(Reason::Submitted.as_string())
        .bind(&at)
        .bind(&id)
        .bind(labels)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    let Some(inserted) = rows.first() else {
        return Err(StoreError::QueueFull { limit: max_queued });
    };
    let task = row::task(inserted)?;
    Ok(Created::New(task))
}

/// The compare-and-set status move, with its history row and counters.
pub(crate) async fn transition(
    conn: &mut SqliteConnection,
    id: TaskId,
    from: TaskStatus,
    t: &Transition,
) -> StoreResult<Task> {
    check_transition(from, t.to)?;
    if let Some(fence) = t.fence {
        // One process owns a SQLite file: it keeps no leases, so no fence is current.
        return Err(StoreError::Fenced { fence });
    }
    // One round trip: the compare-and-set, then (only if it changed the row) the counters
    // and the history row.
    const SQL: &str = concat!(
        "UPDATE tasks SET status = ?, reason = ?, message = ?, \
           started_at = COALESCE(?, started_at), finished_at = COALESCE(?, finished_at), \
           worker_runtime = CASE WHEN ? THEN NULL ELSE COALESCE(?, worker_runtime) END, \
           worker_name = CASE WHEN ? THEN NULL ELSE COALESCE(?, worker_name) END, \
           exit_code = COALESCE(?, exit_code), \
           worker_token_hash = COALESCE(?, worker_token_hash), result = COALESCE(?, result) \
         WHERE id = ? AND status = ? RETURNING ",
        task_columns!(),
        "; UPDATE task_counts SET n = n - 1 WHERE status = ? AND changes() = 1; \
         INSERT INTO task_counts (status, n) SELECT ?, 1 WHERE changes() = 1 \
           ON CONFLICT (status) DO UPDATE SET n = n + 1; \
         INSERT INTO task_transitions (task_id, from_status, to_status, reason, at) \
         SELECT ?, ?, ?, ?, ? WHERE changes() = 1"
    );
    let at = ts(t.at);
    let started = (t.to == TaskStatus::Running).then(|| at.clone());
    let finished = t.to.is_terminal().then(|| at.clone());
    // Requeueing forgets the worker; other moves keep it unless a new one is given.
    let clear_worker = t.to == TaskStatus::Queued;
    let (task_id, reason) = (id.to_string(), t.reason.as_string());
    let result = t
        .result
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(StoreError::backend)?;
    let rows = sqlx::query(SQL)
        .bind(t.to.as_str())
        .bind(&reason)
        .bind(&t.message)
        .bind(started)
        .bind(finished)
        .bind(clear_worker)
        .bind(t.worker.as_ref().map(|w| w.runtime.clone()))
        .bind(clear_worker)
        .bind(t.worker.as_ref().map(|w| w.name.clone()))
        .bind(t.exit_code)
        .bind(&t.worker_token_hash)
        .bind(result)
        .bind(&task_id)
        .bind(from.as_str())
        .bind(from.as_str())
        .bind(t.to.as_str())
        .bind(&task_id)
        .bind(from.as_str())
        .bind(t.to.as_str())
        .bind(&reason)
        .bind(&at)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
    let Some(updated) = rows.first() else {
        return Err(lost_race(conn, id, from).await);
    };
    let task = row::task(updated)?;
    Ok(task)
}

/// Cancel at once if queued, else flag an active task. Both writes run in one transaction
/// holding the write lock, so the task cannot move between them.
pub(crate) async fn cancel(conn: &mut SqliteConnection, id: TaskId) -> StoreResult<Task> {
    const FLAG: &str = concat!(
        "UPDATE tasks SET cancel_requested = 1 \
         WHERE id = ? AND status IN ('starting', 'running') RETURNING ",
        task_columns!()
    );
    let now = Transition::new(TaskStatus::Cancelled, Reason::CancelledByUser);
    match transition(conn, id, TaskStatus::Queued, &now).await {
        Err(StoreError::StatusChanged { actual, .. }) if actual.is_terminal() => {
            Err(StoreError::AlreadyFinished(actual))
        }
        Err(StoreError::StatusChanged { .. }) => {
            let flagged = sqlx::query(FLAG)
                .bind(id.to_string())
                .fetch_optional(&mut *conn)
                .await
                .map_err(db_err)?;
            match flagged {
                Some(row) => row::task(&row),
                None => Err(lost_race(conn, id, TaskStatus::Running).await),
            }
        }
        other => other,
    }
}

/// Store the task's result (`json`, serialized by the caller).
pub(crate) async fn set_result(
    conn: &mut SqliteConnection,
    id: TaskId,
    json: &str,
) -> StoreResult<()> {
    let done = sqlx::query("UPDATE tasks SET result = ? WHERE id = ?")
        .bind(json)
        .bind(id.to_string())
        .execute(conn)
        .await
        .map_err(db_err)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(crate) async fn set_token_hash(
    conn: &mut SqliteConnection,
    id: TaskId,
    hash: &str,
) -> StoreResult<()> {
    sqlx::query("UPDATE tasks SET worker_token_hash = ? WHERE id = ?")
        .bind(hash)
        .bind(id.to_string())
        .execute(conn)
        .await
        .map_err(db_err)?;
    Ok(())
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
