//! One group commit: the ops of a batch run in arrival order in one `BEGIN IMMEDIATE`
//! transaction, each inside its own savepoint, so an op that fails (queue full, status
//! changed, idempotency conflict, sequence gap, a constraint) rolls back only its own writes
//! and keeps its own typed error, while a later op sees every earlier op's effects. The
//! transaction commits once (one fsync for the batch when it holds a durable op); only then
//! is every caller answered and are the followers of the ops that succeeded woken. When the
//! transaction cannot be committed, every caller gets a backend error and nothing of the
//! batch is visible.

use ao_core::store::{ChangeFeed, StoreError, StoreResult};
use sqlx::{Connection, SqliteConnection};
use tokio::sync::oneshot;
use tracing::warn;

use super::WriterError;
use super::op::{Done, Notice, Op};
use crate::{db_err, durable};

/// What a caller gets back: its op's result and the number of the batch that ran it.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) result: StoreResult<Done>,
    #[cfg_attr(not(test), allow(dead_code, reason = "read by the writer's tests"))]
    pub(crate) batch: u64,
}

/// An op and where to send its answer.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) op: Op,
    pub(crate) reply: oneshot::Sender<Answer>,
}

type Applied = StoreResult<(Done, Notice)>;

/// Run `jobs` as batch number `batch` on `conn` and answer every caller; gives the
/// connection back for the next batch, and whether this one was committed.
pub(crate) async fn run(
    mut conn: SqliteConnection,
    jobs: Vec<Job>,
    batch: u64,
    feed: ChangeFeed,
) -> (SqliteConnection, bool) {
    let (ops, replies): (Vec<Op>, Vec<oneshot::Sender<Answer>>) =
        jobs.into_iter().map(|j| (j.op, j.reply)).unzip();
    let committed = match apply_all(&mut conn, &ops).await {
        Ok(results) => {
            for (result, reply) in results.into_iter().zip(replies) {
                let result = result.map(|(done, notice)| {
                    match notice {
                        Notice::Nobody => {}
                        Notice::Output(id) => feed.notify(id),
                        Notice::Task(id) => feed.notify_task(id),
                    }
                    done
                });
                // A caller that stopped waiting (its request was dropped) needs no answer;
                // its write is committed all the same, as it would be without batching.
                let _ = reply.send(Answer { result, batch });
            }
            true
        }
        Err(e) => {
            warn!(error = %e, ops = ops.len(), batch, "a write batch was not committed");
            let cause = e.to_string();
            for reply in replies {
                let failed = WriterError::NotCommitted(cause.clone());
                let _ = reply.send(Answer {
                    result: Err(StoreError::backend(failed)),
                    batch,
                });
            }
            false
        }
    };
    (conn, committed)
}

/// The ops' results, once the transaction holding them is committed; an error when it is not.
async fn apply_all(conn: &mut SqliteConnection, ops: &[Op]) -> StoreResult<Vec<Applied>> {
    durable::set_level(conn, ops.iter().any(Op::durable)).await?;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
    let mut results = Vec::with_capacity(ops.len());
    exec(&mut tx, "SAVEPOINT op").await?;
    for (i, op) in ops.iter().enumerate() {
        let result = op.apply(&mut tx).await;
        // A failed op leaves nothing behind. If SQLite rolled back the whole transaction
        // itself (a full disk, an I/O error), the savepoint is gone and the batch fails.
        // Ending one op's savepoint and opening the next one's is one round trip.
        let last = i + 1 == ops.len();
        let end = match (result.is_ok(), last) {
            (true, false) => "RELEASE op; SAVEPOINT op",
            (true, true) => "RELEASE op",
            (false, false) => "ROLLBACK TO op; RELEASE op; SAVEPOINT op",
            (false, true) => "ROLLBACK TO op; RELEASE op",
        };
        exec(&mut tx, end).await?;
        results.push(result);
    }
    // A failed commit is rolled back when `tx` drops, before the connection runs anything else.
    tx.commit().await.map_err(db_err)?;
    Ok(results)
}

async fn exec(conn: &mut SqliteConnection, sql: &'static str) -> StoreResult<()> {
    sqlx::raw_sql(sql).execute(conn).await.map_err(db_err)?;
    Ok(())
}
