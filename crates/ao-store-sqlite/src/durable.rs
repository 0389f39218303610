//! Which writes wait for the disk.
//!
//! In WAL mode a commit with `synchronous=FULL` fsyncs the log; with `NORMAL` it does not, and
//! a power loss or OS crash (not a process crash) may drop the latest such commits. The log is
//! replayed as a prefix, so a durable commit also makes every commit before it durable.
//!
//! Durable: accepting a task (the API answered 202), every terminal status (a client may
//! have seen it) and a cancel request (it may cancel a queued task). Each of these also
//! hardens the output and events stored before it, which the output pipeline stores before
//! the exit is reported. Not durable: the moves in between (`starting`, `running`, requeue),
//! token hashes, results, output and events. If the machine loses them, its workers are gone
//! with them and recovery settles the task from the last durable state. This takes three
//! fsyncs out of every task's start.
//!
//! The writer commits many ops in one transaction (see `writer`): the batch commits with
//! `synchronous=FULL` when any of its ops is durable, so no durable op is answered before
//! the fsync that covers it, and the others ride along for free.

use ao_core::lifecycle::TaskStatus;
use ao_core::store::StoreResult;
use sqlx::SqliteConnection;

use crate::db_err;

/// Creating a task is durable.
pub(crate) const CREATE: bool = true;
/// A cancel request is durable: on a queued task it is a terminal move.
pub(crate) const CANCEL: bool = true;

/// A status move is durable when it ends the task.
pub(crate) fn transition(to: TaskStatus) -> bool {
    to.is_terminal()
}

/// Set the writer connection to commit durably or not. The level must be chosen before a
/// transaction begins (SQLite ignores the pragma inside one).
pub(crate) async fn set_level(conn: &mut SqliteConnection, durable: bool) -> StoreResult<()> {
    let pragma = if durable {
        "PRAGMA synchronous = FULL"
    } else {
        "PRAGMA synchronous = NORMAL"
    };
    sqlx::query(pragma).execute(conn).await.map_err(db_err)?;
    Ok(())
}
