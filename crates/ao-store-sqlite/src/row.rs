//! Mapping between SQL rows and domain types. Timestamps are stored as RFC 3339 text in UTC
//! with microseconds, which sorts and reads well.

use ao_core::lifecycle::{Reason, TaskStatus};
use ao_core::store::{StoreError, StoreResult};
use ao_core::task::{Task, TaskSpec, WorkerRef};
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::db_err;

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn parse_ts(s: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(StoreError::backend)
}

fn opt_ts(s: Option<String>) -> StoreResult<Option<DateTime<Utc>>> {
    s.as_deref().map(parse_ts).transpose()
}

pub(crate) fn status(s: &str) -> StoreResult<TaskStatus> {
    s.parse().map_err(StoreError::backend)
}

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

pub(crate) fn task(row: &SqliteRow) -> StoreResult<Task> {
    let get = |c: &str| -> StoreResult<String> { row.try_get::<String, _>(c).map_err(db_err) };
    let opt = |c: &str| -> StoreResult<Option<String>> {
        row.try_get::<Option<String>, _>(c).map_err(db_err)
    };
    let spec: TaskSpec = serde_json::from_str(&get("spec")?).map_err(StoreError::backend)?;
    let worker = match (opt("worker_runtime")?, opt("worker_name")?) {
        (Some(runtime), Some(name)) => Some(WorkerRef { runtime, name }),
        _ => None,
    };
    let result = opt("result")?
        .map(|r| serde_json::from_str(&r))
        .transpose()
        .map_err(StoreError::backend)?;
    Ok(Task {
        id: get("id")?.parse().map_err(StoreError::backend)?,
        status: status(&get("status")?)?,
        reason: Reason::parse(&get("reason")?),
        message: opt("message")?,
        spec,
        created_at: parse_ts(&get("created_at")?)?,
        started_at: opt_ts(opt("started_at")?)?,
        finished_at: opt_ts(opt("finished_at")?)?,
        worker,
        exit_code: row.try_get::<Option<i32>, _>("exit_code").map_err(db_err)?,
        cancel_requested: row.try_get::<bool, _>("cancel_requested").map_err(db_err)?,
        result,
        idempotency_key: opt("idempotency_key")?,
        request_hash: get("request_hash")?,
    })
}
