//! Which writes wait for the disk.
//!
//! In WAL mode a commit with `synchronous=FULL` fsyncs the log; with `NORMAL` it does not, and
//! a power loss or OS crash (not a process crash) may drop the latest such commits. The log is
//! replayed as a prefix, so a durable commit also makes every commit before it durable.
//!
//! Durable: accepting a task (the API answered 202) and every terminal status (a client may
//! have seen it). Each of these also hardens the output and events stored before it, which
//! the output pipeline stores before the exit is reported. Not durable: the moves in
//! between (`starting`, `running`, requeue), token hashes, results, output and events. If
//! the machine loses them, its workers are gone with them and recovery settles the task
//! from the last durable state. This takes three fsyncs out of every task's start.

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqlitePool};

use crate::db_err;
use ao_core::store::StoreResult;

/// The writer connection, set up to commit durably or not. The level must be chosen before
/// a transaction begins; writes that do not choose keep the last level (at worst durable).
pub(crate) async fn writer(
    pool: &SqlitePool,
    durable: bool,
) -> StoreResult<PoolConnection<Sqlite>> {
    let mut conn = pool.acquire().await.map_err(db_err)?;
    let pragma = if durable {
        "PRAGMA synchronous = FULL"
    } else {
        "PRAGMA synchronous = NORMAL"
    };
    sqlx::query(pragma)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(conn)
}
