//! Mapping between rows and domain types. Times are `timestamptz` (microseconds); every task
//! a write returns is built from the row its statement returned (`RETURNING`), never from
//! the input, so what a caller gets equals what a later read gets.

use ao_core::lifecycle::{Reason, TaskStatus};
use ao_core::store::{StoreError, StoreResult};
use ao_core::task::{Task, TaskId, TaskSpec, WorkerRef};
use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::types::Json;

use crate::error::db_err;

/// The columns every task query selects, as a literal so queries stay `&'static str`
/// (`concat!("SELECT ", task_columns!(), " FROM tasks ...")`).
macro_rules! task_columns {
    () => {
        "seq, id, status, reason, message, spec, created_at, started_at, finished_at, \
         worker_runtime, worker_name, exit_code, cancel_requested, result, idempotency_key, \
         request_hash"
    };
}
pub(crate) use task_columns;

pub(crate) fn status(s: &str) -> StoreResult<TaskStatus> {
    s.parse().map_err(StoreError::backend)
}

fn col<'r, T>(row: &'r PgRow, name: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get::<T, _>(name).map_err(db_err)
}

pub(crate) fn task(row: &PgRow) -> StoreResult<Task> {
    let Json(spec): Json<TaskSpec> = col(row, "spec")?;
    let worker = match (
        col::<Option<String>>(row, "worker_runtime")?,
        col::<Option<String>>(row, "worker_name")?,
    ) {
        (Some(runtime), Some(name)) => Some(WorkerRef { runtime, name }),
        _ => None,
    };
    let result = col::<Option<String>>(row, "result")?
        .map(|r| serde_json::from_str(&r))
        .transpose()
        .map_err(StoreError::backend)?;
    Ok(Task {
        id: TaskId(col(row, "id")?),
        status: status(&col::<String>(row, "status")?)?,
        reason: Reason::parse(&col::<String>(row, "reason")?),
        message: col(row, "message")?,
        spec,
        created_at: col::<DateTime<Utc>>(row, "created_at")?,
        started_at: col(row, "started_at")?,
        finished_at: col(row, "finished_at")?,
        worker,
        exit_code: col(row, "exit_code")?,
        cancel_requested: col(row, "cancel_requested")?,
        result,
        idempotency_key: col(row, "idempotency_key")?,
        request_hash: col(row, "request_hash")?,
    })
}

/// The task's sequence number, for cursors.
pub(crate) fn seq(row: &PgRow) -> StoreResult<i64> {
    col(row, "seq")
}

pub(crate) fn tasks(rows: &[PgRow]) -> StoreResult<Vec<Task>> {
    rows.iter().map(task).collect()
}
