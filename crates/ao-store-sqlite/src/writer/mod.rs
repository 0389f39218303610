//! Group commit: every write of the store goes through a writer task that batches what is
//! waiting and commits it in one transaction, so concurrent submissions share one fsync
//! instead of paying one each (SQLite commits one transaction at a time, and with
//! `synchronous=FULL` each commit waits for the disk).
//!
//! A caller sends its [`Op`] over a channel and waits for the answer. The writer takes the
//! first op waiting and whatever else is already queued behind it, up to [`MAX_OPS`] ops or
//! [`MAX_BYTES`] of payload, and runs them as one batch (see `batch`): in arrival order, each
//! in its own savepoint, one commit, then the answers and the change-feed notifications. No
//! op is answered before the commit that covers it. There is no timer: while a batch commits,
//! the next one fills up by itself, so a lone write waits for nothing but its own commit.
//!
//! Fairness: the channel is FIFO and holds at most one batch ([`MAX_OPS`]); callers waiting
//! for room are let in in arrival order. A write that enters the channel while a burst of
//! submissions is committed is therefore in the next batch (unless a batch is cut short by
//! the byte budget), so heavy admission delays a scheduler transition by at most one batch.
//!
//! A store has one writer task per writer connection ([`crate::Connections::writers`]), each
//! with its own channel; ops are dealt to them in turn. With several, their transactions
//! race for SQLite's write lock (`BEGIN IMMEDIATE` waits for it), which is how the
//! conformance suite shows that correctness rests on the SQL and not on a single writer.
//!
//! Failure: a batch that cannot be committed answers every caller with a backend error and
//! leaves nothing behind. A batch runs in its own task: if it panics, its callers get a
//! backend error, its connection is dropped (SQLite rolls the transaction back) and the
//! next batch opens a new one. The writer stops when the store's last clone is dropped: it
//! finishes what was sent, closes its connection and ends.

mod batch;
mod op;
#[cfg(test)]
mod tests;

pub(crate) use op::{Done, Op};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ao_core::store::{ChangeFeed, StoreError, StoreResult};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{Instrument, debug, error, info_span, warn};

use batch::{Answer, Job};

/// The most ops in one batch; also the room in each writer's channel.
pub(crate) const MAX_OPS: usize = 256;
/// A batch takes no more ops once their payload (specs, results, output) passes this.
pub(crate) const MAX_BYTES: usize = 8 << 20;

/// Why the writer could not give an op its own answer (wrapped in [`StoreError::Backend`]).
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriterError {
    #[error("the store's writer has stopped")]
    Stopped,
    #[error("the store's writer stopped before answering this write")]
    Lost,
    #[error("the write's batch was not committed: {0}")]
    NotCommitted(String),
    #[error("the writer could not open its connection: {0}")]
    Connect(String),
}

/// The handle callers send ops through; cheap to clone.
#[derive(Clone)]
pub(crate) struct Writer {
    lanes: Arc<[mpsc::Sender<Job>]>,
    next: Arc<AtomicUsize>,
    /// Closed once every writer task has ended.
    #[cfg(test)]
    stopped: watch::Receiver<()>,
}

impl Writer {
    /// Start one writer task per connection in `conns` (at least one); `opts` opens a
    /// replacement after a batch lost its connection.
    pub(crate) fn start(
        opts: SqliteConnectOptions,
        conns: Vec<SqliteConnection>,
        feed: ChangeFeed,
    ) -> Writer {
        let (alive, _stopped) = watch::channel(());
        let alive = Arc::new(alive);
        let lanes: Vec<mpsc::Sender<Job>> = conns
            .into_iter()
            .enumerate()
            .map(|(i, conn)| {
                let (tx, rx) = mpsc::channel(MAX_OPS);
                let lane = Lane {
                    rx,
                    opts: opts.clone(),
                    conn: Some(conn),
                    feed: feed.clone(),
                    batches: 0,
                    _alive: alive.clone(),
                };
                tokio::spawn(lane.run().instrument(info_span!("sqlite_writer", lane = i)));
                tx
            })
            .collect();
        Writer {
            lanes: lanes.into(),
            next: Arc::new(AtomicUsize::new(0)),
            #[cfg(test)]
            stopped: _stopped,
        }
    }

    /// Run `op` in the next batch and give its answer once that batch is committed.
    pub(crate) async fn run(&self, op: Op) -> StoreResult<Done> {
        self.answer(op).await?.result
    }

    /// [`Writer::run`], with the number of the batch that ran the op.
    pub(crate) async fn answer(&self, op: Op) -> StoreResult<Answer> {
        let lane = self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
        let (reply, answer) = oneshot::channel();
        self.lanes[lane]
            .send(Job { op, reply })
            .await
            .map_err(|_| StoreError::backend(WriterError::Stopped))?;
        answer
            .await
            .map_err(|_| StoreError::backend(WriterError::Lost))
    }

    /// An error when a writer task has ended (for readiness).
    pub(crate) fn check(&self) -> StoreResult<()> {
        if self.lanes.iter().any(mpsc::Sender::is_closed) {
            return Err(StoreError::backend(WriterError::Stopped));
        }
        Ok(())
    }

    /// Resolves once every writer task has ended.
    #[cfg(test)]
    pub(crate) fn stopped(&self) -> impl Future<Output = ()> + use<> {
        let mut rx = self.stopped.clone();
        async move { while rx.changed().await.is_ok() {} }
    }
}

/// One writer task: its channel, its connection and its batch count.
struct Lane {
    rx: mpsc::Receiver<Job>,
    opts: SqliteConnectOptions,
    /// `None` after a batch lost it; the next batch opens a new one.
    conn: Option<SqliteConnection>,
    feed: ChangeFeed,
    batches: u64,
    /// Dropped with the last lane, which closes [`Writer::stopped`].
    _alive: Arc<watch::Sender<()>>,
}

impl Lane {
    async fn run(mut self) {
        while let Some(first) = self.rx.recv().await {
            let jobs = take(first, &mut self.rx);
            self.batches += 1;
            let batch = self.batches;
            let conn = match self.connection().await {
                Ok(conn) => conn,
                Err(e) => {
                    warn!(error = %e, ops = jobs.len(), "the writer could not reopen its connection");
                    fail(jobs, batch, &e.to_string());
                    continue;
                }
            };
            let task = batch::run(conn, jobs, batch, self.feed.clone());
            match tokio::spawn(task.in_current_span()).await {
                Ok((conn, true)) => self.conn = Some(conn),
                Ok((mut conn, false)) => {
                    // A failed batch may mean a dead connection: keep it only if it answers.
                    if conn.ping().await.is_ok() {
                        self.conn = Some(conn);
                    }
                }
                Err(e) if e.is_panic() => {
                    error!(error = %e, batch, "a write batch panicked; its callers got an error");
                }
                Err(_) => break, // the runtime is shutting down
            }
        }
        if let Some(conn) = self.conn.take()
            && let Err(e) = conn.close().await
        {
            warn!(error = %e, "closing the writer's connection failed");
        }
        debug!(batches = self.batches, "writer stopped");
    }

    async fn connection(&mut self) -> Result<SqliteConnection, sqlx::Error> {
        match self.conn.take() {
            Some(conn) => Ok(conn),
            None => SqliteConnection::connect_with(&self.opts).await,
        }
    }
}

/// `first` and whatever is already waiting behind it, within the batch's bounds.
fn take(first: Job, rx: &mut mpsc::Receiver<Job>) -> Vec<Job> {
    let mut bytes = first.op.size();
    let mut jobs = Vec::with_capacity(MAX_OPS.min(rx.len() + 1));
    jobs.push(first);
    while jobs.len() < MAX_OPS && bytes < MAX_BYTES {
        let Ok(job) = rx.try_recv() else { break };
        bytes += job.op.size();
        jobs.push(job);
    }
    jobs
}

/// Answer every job of a batch that could not run with a backend error.
fn fail(jobs: Vec<Job>, batch: u64, cause: &str) {
    for job in jobs {
        let _ = job.reply.send(Answer {
            result: Err(StoreError::backend(WriterError::Connect(cause.to_string()))),
            batch,
        });
    }
}
