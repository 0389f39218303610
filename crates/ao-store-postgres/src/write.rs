//! Writes to task rows: compare-and-set transitions (fenced or not) with their history and
//! status counters, cancellation, results and token hashes. Creation is batched (`admit`,
//! `batch`) and only handed over from here.
//!
//! Each is one transaction whose conditions live in the statements (`WHERE status = $from`),
//! never in a value read earlier, and which queues its change
//! notification (`notify`) before it commits. Row locks are always taken in the same order,
//! lease row, then task row, then status counters sorted by name, so racing writers wait for
//! each other instead of deadlocking (and a deadlock, should one happen, is retried).
//! Admission batches (`batch`) lock only the `queued` counter and otherwise insert new rows,
//! which no other writer can hold, so they fit that order: a transition out of `queued`
//! waits for at most the one batch holding the counter.

use ao_core::Reason;
use ao_core::lease::SCHEDULER_LEASE;
use ao_core::lifecycle::{TaskStatus, check_transition};
use ao_core::store::{Created, StoreError, StoreResult, Transition};
use ao_core::task::{NewTask, Task, TaskId, TaskResult};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use tracing::instrument;

use crate::PgStore;
use crate::error::{commit_err, db_err};
use crate::notify::{CHANNEL, Change, payload};
use crate::row::{self, task_columns};

async fn record(
    conn: &mut PgConnection,
    id: TaskId,
    from: Option<TaskStatus>,
    to: TaskStatus,
    reason: &Reason,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO task_transitions (task_id, from_status, to_status, reason, at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.0)
    .bind(from.map(|s| s.as_str()))
    .bind(to.as_str())
    .bind(reason.as_string())
    .bind(at)
    .execute(conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Move one task from `from` to `to` in the status counters, locking the two rows in name
/// order (see the module docs).
async fn count_move(conn: &mut PgConnection, from: TaskStatus, to: TaskStatus) -> StoreResult<()> {
    let mut moves = [(from.as_str(), -1_i64), (to.as_str(), 1)];
    moves.sort();
    for (status, delta) in moves {
        // Every status has its row (the migration made them).
        sqlx::query("UPDATE task_counts SET n = n + $2 WHERE status = $1")
            .bind(status)
            .bind(delta)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    Ok(())
}

/// Why a compare-and-set matched no row: the task is gone or in another status.
async fn lost_race(conn: &mut PgConnection, id: TaskId, expected: TaskStatus) -> StoreError {
    let actual = sqlx::query_scalar::<_, String>("SELECT status FROM tasks WHERE id = $1")
        .bind(id.0)
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

impl PgStore {
    /// Create a task with the next admission batch (see `admit`).
    #[instrument(skip_all, fields(task_id = %new.id))]
    pub(crate) async fn insert(&self, new: NewTask, max_queued: usize) -> StoreResult<Created> {
        self.admission.submit(new, max_queued).await
    }

    #[instrument(skip_all, fields(task_id = %id, from = %from, to = %t.to))]
    pub(crate) async fn apply(
        &self,
        id: TaskId,
        from: TaskStatus,
        t: Transition,
    ) -> StoreResult<Task> {
        check_transition(from, t.to)?;
        self.retrying("transition", || self.apply_once(id, from, &t))
            .await
    }

    async fn apply_once(&self, id: TaskId, from: TaskStatus, t: &Transition) -> StoreResult<Task> {
        const SQL: &str = concat!(
            "UPDATE tasks SET status = $1, reason = $2, message = $3, \
               started_at = COALESCE($4, started_at), finished_at = COALESCE($5, finished_at), \
               worker_runtime = CASE WHEN $6 THEN NULL ELSE COALESCE($7, worker_runtime) END, \
               worker_name = CASE WHEN $6 THEN NULL ELSE COALESCE($8, worker_name) END, \
               exit_code = COALESCE($9, exit_code), \
               worker_token_hash = COALESCE($12, worker_token_hash), \
               result = COALESCE($13, result), cost_usd = CASE WHEN $13 IS NULL THEN cost_usd ELSE $14 END \
             WHERE id = $10 AND status = $11 RETURNING ",
            task_columns!()
        );
        let started = (t.to == TaskStatus::Running).then_some(t.at);
        let finished = t.to.is_terminal().then_some(t.at);
        // Requeueing forgets the worker; other moves keep it unless a new one is given.
        let clear_worker = t.to == TaskStatus::Queued;
        let result = t
            .result
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(StoreError::backend)?;
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        if let Some(fence) = t.fence {
            // Held until commit: no hand-over can commit between this check and the write
            // (see `lease`).
            let current =
                sqlx::query("SELECT 1 FROM leases WHERE name = $1 AND generation = $2 FOR SHARE")
                    .bind(SCHEDULER_LEASE)
                    .bind(fence.0)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
            if current.is_none() {
                return Err(StoreError::Fenced { fence });
            }
        }
        let updated = sqlx::query(SQL)
            .bind(t.to.as_str())
            .bind(t.reason.as_string())
            .bind(&t.message)
            .bind(started)
            .bind(finished)
            .bind(clear_worker)
            .bind(t.worker.as_ref().map(|w| w.runtime.as_str()))
            .bind(t.worker.as_ref().map(|w| w.name.as_str()))
            .bind(t.exit_code)
            .bind(id.0)
            .bind(from.as_str())
            .bind(&t.worker_token_hash)
            .bind(result)
            .bind(t.result.as_ref().and_then(|r| r.cost_usd))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        let Some(updated) = updated else {
            return Err(lost_race(&mut tx, id, from).await);
        };
        let task = row::task(&updated)?;
        count_move(&mut tx, from, t.to).await?;
        record(&mut tx, id, Some(from), t.to, &t.reason, t.at).await?;
        self.announce(&mut tx, Change::Task, id).await?;
        tx.commit().await.map_err(commit_err)?;
        self.woke(Change::Task, id);
        Ok(task)
    }

    /// Cancel at once if queued, else flag an active task; tried again when the task moved
    /// between the two conditional writes (each time means another writer progressed).
    #[instrument(skip_all, fields(task_id = %id))]
    pub(crate) async fn cancel(&self, id: TaskId) -> StoreResult<Task> {
        loop {
            let now = Transition::new(TaskStatus::Cancelled, Reason::CancelledByUser);
            match self.apply(id, TaskStatus::Queued, now).await {
                Err(StoreError::StatusChanged { actual, .. }) if actual.is_terminal() => {
                    return Err(StoreError::AlreadyFinished(actual));
                }
                Err(StoreError::StatusChanged { .. }) => {}
                other => return other,
            }
            if let Some(task) = self.retrying("cancel", || self.flag(id)).await? {
                return Ok(task);
            }
        }
    }

    /// Flag an active task for the scheduler to stop; `None` if it is not active.
    async fn flag(&self, id: TaskId) -> StoreResult<Option<Task>> {
        const FLAG: &str = concat!(
            "UPDATE tasks SET cancel_requested = true \
             WHERE id = $1 AND status IN ('starting', 'running') RETURNING ",
            task_columns!()
        );
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let Some(flagged) = sqlx::query(FLAG)
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
        else {
            return Ok(None);
        };
        let task = row::task(&flagged)?;
        self.announce(&mut tx, Change::Task, id).await?;
        tx.commit().await.map_err(commit_err)?;
        self.woke(Change::Task, id);
        Ok(Some(task))
    }

    /// Store the result (one idempotent statement that also notifies).
    #[instrument(skip_all, fields(task_id = %id))]
    pub(crate) async fn store_result(&self, id: TaskId, result: &TaskResult) -> StoreResult<()> {
        let json = serde_json::to_string(result).map_err(StoreError::backend)?;
        let note = payload(&self.origin, Change::Task, id);
        let done = self
            .retrying("set_result", || async {
                sqlx::query(
                    "WITH u AS (UPDATE tasks SET result = $1, cost_usd = $2 WHERE id = $3 \
                     RETURNING id) SELECT pg_notify($4, $5) FROM u",
                )
                .bind(&json)
                .bind(result.cost_usd)
                .bind(id.0)
                .bind(CHANNEL)
                .bind(&note)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)
            })
            .await?;
        if done.is_none() {
            return Err(StoreError::NotFound);
        }
        self.woke(Change::Task, id);
        Ok(())
    }

    pub(crate) async fn store_token_hash(&self, id: TaskId, hash: &str) -> StoreResult<()> {
        self.retrying("set_worker_token_hash", || async {
            sqlx::query("UPDATE tasks SET worker_token_hash = $1 WHERE id = $2")
                .bind(hash)
                .bind(id.0)
                .execute(&self.pool)
                .await
                .map_err(db_err)
        })
        .await?;
        Ok(())
    }
}
