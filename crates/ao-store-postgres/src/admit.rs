//! Batched admission: concurrent `create` calls share one transaction.
//!
//! A create's transaction updates the one `queued` counter row (the queue bound) and sends a
//! notification, and PostgreSQL holds both that row's lock and its notification queue's lock
//! until the commit is durable. So creates made one transaction each are applied one flush
//! after another, whatever the pool size: about 750 a second on a 2-core machine with a 1 ms
//! fdatasync. Here each store runs one admission task: callers hand their create to it over
//! a channel, it takes whatever is waiting (up to [`crate::PgOptions::admission_batch`]
//! creates or [`BATCH_BYTES`] of specs), applies them in one transaction (`batch`) and only
//! after the commit answers each caller and wakes the local change feed. While one batch
//! commits, the next gathers, so a batch holds about as many creates as arrived during one
//! commit. There is no timer: a lone create is sent at once, in a batch of one.
//!
//! Failures: a batch whose commit failed (it may have been applied) or whose connection
//! stayed down through the retries fails every create in it with the same error
//! ([`PgError::Batch`]); any other failure may be one create's doing (a value the database
//! refuses), so the batch is applied again one create at a time, and only the culprit fails.
//!
//! A caller that stops waiting (its request was dropped) does not withdraw its create: the
//! create is applied with its batch, like a request whose answer was lost on the way.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ao_core::retry::RetryPolicy;
use ao_core::store::{ChangeFeed, Created, StoreError, StoreResult};
use ao_core::task::NewTask;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, info_span, warn};

use crate::batch::{self, Applied, Pending};
use crate::error::{PgError, fails_whole_batch};

/// The most spec bytes in one batch (a batch is bound by count and by size, so a burst of
/// large prompts does not make one huge statement).
pub const BATCH_BYTES: usize = 8 << 20;

/// What admission did since its store opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdmissionStats {
    /// Transactions (batches) run.
    pub batches: u64,
    /// Creates handled, whatever their answer.
    pub tasks: u64,
    /// The largest batch.
    pub largest: u64,
}

#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    tasks: AtomicU64,
    largest: AtomicU64,
}

impl Counters {
    fn record(&self, size: usize) {
        let size = size as u64;
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.tasks.fetch_add(size, Ordering::Relaxed);
        self.largest.fetch_max(size, Ordering::Relaxed);
    }
}

/// A create handed to the admission task, with where to send its answer.
struct Request {
    pending: Pending,
    reply: oneshot::Sender<StoreResult<Created>>,
}

/// The callers' side of a store's admission task; the task stops when this is dropped.
#[derive(Debug)]
pub(crate) struct Admission {
    tx: mpsc::Sender<Request>,
    counters: Arc<Counters>,
}

/// What the admission task writes with.
struct Writer {
    pool: PgPool,
    changes: ChangeFeed,
    origin: Arc<str>,
    retry: RetryPolicy,
    max_batch: usize,
    counters: Arc<Counters>,
}

impl Admission {
    /// Start the admission task of a store (inside a Tokio runtime).
    pub(crate) fn start(
        pool: PgPool,
        changes: ChangeFeed,
        origin: Arc<str>,
        retry: RetryPolicy,
        max_batch: usize,
    ) -> Admission {
        let max_batch = max_batch.max(1);
        let counters = Arc::new(Counters::default());
        // Room for a few batches: beyond that, callers wait to hand their create over.
        let (tx, rx) = mpsc::channel(4 * max_batch);
        let span = info_span!("pg_admission", origin = %origin);
        let writer = Writer {
            pool,
            changes,
            origin,
            retry,
            max_batch,
            counters: counters.clone(),
        };
        tokio::spawn(writer.run(rx).instrument(span));
        Admission { tx, counters }
    }

    /// Create `new` with the next batch; the answer comes after that batch's commit.
    pub(crate) async fn submit(&self, new: NewTask, max_queued: usize) -> StoreResult<Created> {
        let spec = serde_json::to_string(&new.spec).map_err(StoreError::backend)?;
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            new,
            spec,
            max_queued,
        };
        let stopped = || StoreError::backend(PgError::AdmissionStopped);
        self.tx
            .send(Request { pending, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    pub(crate) fn stats(&self) -> AdmissionStats {
        AdmissionStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            tasks: self.counters.tasks.load(Ordering::Relaxed),
            largest: self.counters.largest.load(Ordering::Relaxed),
        }
    }
}

impl Writer {
    /// Gather and apply batches until every caller's side is dropped.
    async fn run(self, mut rx: mpsc::Receiver<Request>) {
        let mut batch = Vec::with_capacity(self.max_batch);
        while let Some(first) = rx.recv().await {
            let mut bytes = first.pending.spec.len();
            batch.push(first);
            // Take what is waiting, never wait for more.
            while batch.len() < self.max_batch && bytes < BATCH_BYTES {
                let Ok(next) = rx.try_recv() else { break };
                bytes += next.pending.spec.len();
                batch.push(next);
            }
            self.admit(std::mem::take(&mut batch)).await;
        }
    }

    async fn admit(&self, batch: Vec<Request>) {
        self.counters.record(batch.len());
        let (pending, replies): (Vec<Pending>, Vec<_>) =
            batch.into_iter().map(|r| (r.pending, r.reply)).unzip();
        match self.apply(&pending).await {
            Ok(applied) => self.answer(applied, replies),
            Err(e) if replies.len() == 1 => {
                // The caller may have gone; then nobody is left to tell.
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(e));
                }
            }
            Err(e) if fails_whole_batch(&e) => {
                warn!(error = %e, size = replies.len(), "an admission batch failed");
                let shared = Arc::new(e);
                for reply in replies {
                    let source = shared.clone();
                    let size = pending.len();
                    let _ = reply.send(Err(StoreError::backend(PgError::Batch { size, source })));
                }
            }
            Err(e) => {
                warn!(error = %e, size = replies.len(), "an admission batch failed; applying its creates one by one");
                for (p, reply) in pending.into_iter().zip(replies) {
                    match self.apply(std::slice::from_ref(&p)).await {
                        Ok(applied) => self.answer(applied, vec![reply]),
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                }
            }
        }
    }

    async fn apply(&self, pending: &[Pending]) -> StoreResult<Applied> {
        batch::apply(&self.pool, &self.origin, &self.retry, pending).await
    }

    /// Wake the local followers of the created tasks, then answer the callers.
    fn answer(&self, applied: Applied, replies: Vec<oneshot::Sender<StoreResult<Created>>>) {
        for id in applied.created {
            self.changes.notify_task(id);
        }
        for (result, reply) in applied.results.into_iter().zip(replies) {
            let _ = reply.send(result);
        }
    }
}
