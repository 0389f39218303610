//! Admission: launching the workers of queued tasks, several at once.
//!
//! A launch is a round trip to the runtime (for Kubernetes a Secret and a Pod create, each
//! retried on 429 and 5xx), so launching one task after the other caps the rate at one launch
//! per round trip, however fast the API server is. The step therefore keeps up to
//! [`SchedulerConfig::launch_concurrency`](super::SchedulerConfig) launches in flight, in a
//! sliding window over the queue (oldest first): a slow or throttled launch holds one slot
//! while the others go on around it.
//!
//! What stays as it was one at a time: each task moves `queued → starting` before its launch and
//! to `running`, back to `queued` or to `failed` after it (those store writes happen inside
//! the window, so no launch's write waits on a launch that is not being polled), and the
//! scheduler's own bookkeeping (tracking, metrics, backoff) is done one outcome at a time,
//! without awaiting, between polls of the window. When the runtime says it is unavailable,
//! launches not yet begun are not begun (their tasks stay queued, untouched); each refused
//! task backs off on its own and gives up its turn to the tasks behind it (`backoff.rs`),
//! and admission as a whole pauses briefly only when no launch of the step got through.
//! A task whose launches keep being refused for
//! [`SchedulerConfig::launch_deadline`](super::SchedulerConfig) fails with `launch_failed`.
//! Once shutdown is requested no launch begins (the in-flight ones finish, or are left in
//! `starting` for the next start's recovery to adopt or requeue).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::time::Instant;
use tracing::{Instrument, info, info_span, warn};

use super::Scheduler;
use super::TickReport;
use crate::clock::Clock;
use crate::lease::Fence;
use crate::lifecycle::{Reason, TaskStatus};
use crate::runtime::{Callback, LaunchSpec, Runtime, RuntimeError};
use crate::store::{StoreError, StoreResult, TaskStore, Transition};
use crate::task::{Task, TaskId, WorkerRef};
use crate::token;

/// The part of a launch that runs concurrently: it owns clones of what it needs, so the
/// scheduler stays free to account for finished launches while others are in flight.
struct Launcher {
    store: Arc<dyn TaskStore>,
    runtime: Arc<dyn Runtime>,
    clock: Arc<dyn Clock>,
    callback_url: Option<String>,
    /// Set by the first launch the runtime refuses as unavailable: no new launch begins.
    halted: AtomicBool,
    /// Set once shutdown is requested: no new launch begins.
    stopping: Arc<AtomicBool>,
    /// How long a task's launches may keep being refused before it fails.
    deadline: Duration,
    /// The lease generation this scheduler runs under, stamped on every status change.
    fence: Option<Fence>,
}

/// How one launch ended, already recorded in the store.
enum Launch {
    /// Not begun (the window halted), or cancelled between the query and the launch.
    Skipped,
    /// Running; the task as stored.
    Started(Task),
    /// Back in the queue: the runtime was unavailable (`down`) or throttled the launch.
    Requeued { down: bool },
    /// The launch failed for good; the task as stored.
    Failed(Task),
}

/// What a settled launch means for the step's report.
enum Settled {
    Started,
    Requeued { down: bool },
    Failed,
}

impl Launcher {
    /// A status change stamped with the scheduler's clock and its lease fence.
    fn stamp(&self, to: TaskStatus, reason: Reason) -> Transition {
        let mut t = Transition::new(to, reason).fence(self.fence);
        t.at = self.clock.now_utc();
        t
    }

    /// Launch `task`; `refused_since` is when its first refused launch ended, if it had one.
    async fn attempt(&self, task: Task, refused_since: Option<Instant>) -> StoreResult<Launch> {
        if self.halted.load(Ordering::SeqCst) || self.stopping.load(Ordering::SeqCst) {
            return Ok(Launch::Skipped);
        }
        // The token's hash is stored by the claim itself: a fenced write, so a deposed leader
        // can never replace the token of a worker the current leader launched.
        let token = self.callback_url.as_ref().map(|_| token::generate());
        let mut t = self.stamp(TaskStatus::Starting, Reason::Scheduled);
        t.worker_token_hash = token.as_deref().map(token::hash);
        let task = match self.store.transition(task.id, TaskStatus::Queued, t).await {
            Ok(t) => t,
            // Cancelled between the query and now.
            Err(StoreError::StatusChanged { .. }) => return Ok(Launch::Skipped),
            Err(e) => return Err(e),
        };
        let callback = match (&self.callback_url, token) {
            (Some(url), Some(token)) => Some(Callback {
                url: url.clone(),
                token,
            }),
            _ => None,
        };
        let spec = LaunchSpec {
            task: task.clone(),
            callback,
        };
        let result = self.runtime.launch(spec).await;
        if matches!(result, Err(RuntimeError::Unavailable(_))) {
            self.halted.store(true, Ordering::SeqCst);
        }
        self.record(task.id, result, refused_since).await
    }

    /// Record what the runtime answered. Done here, inside the window, so the store writes of
    /// one launch never wait on another launch that is not being polled.
    async fn record(
        &self,
        id: TaskId,
        result: Result<WorkerRef, RuntimeError>,
        refused_since: Option<Instant>,
    ) -> StoreResult<Launch> {
        let clock = &*self.clock;
        let overdue = refused_since.is_some_and(|t| clock.now() >= t + self.deadline);
        match result {
            Ok(worker) => {
                let t = self
                    .stamp(TaskStatus::Running, Reason::WorkerStarted)
                    .worker(worker.clone());
                let running = self.store.transition(id, TaskStatus::Starting, t).await?;
                info!(task_id = %id, worker = %worker.name, runtime = %worker.runtime, "worker started");
                Ok(Launch::Started(running))
            }
            Err(e) if e.is_passing() && overdue => {
                let msg = format!(
                    "no launch got through for {}s (--launch-deadline): {}",
                    self.deadline.as_secs(),
                    e.detail()
                );
                warn!(task_id = %id, error = %msg, "launches kept failing; the task fails");
                let t = self
                    .stamp(TaskStatus::Failed, Reason::LaunchFailed)
                    .message(msg);
                let done = self.store.transition(id, TaskStatus::Starting, t).await?;
                Ok(Launch::Failed(done))
            }
            Err(e) if e.is_passing() => {
                // Cancelled while the launch was in flight: nothing was started, so the task
                // ends here rather than going back to the queue to be launched again.
                if self
                    .store
                    .get(id)
                    .await?
                    .is_some_and(|t| t.cancel_requested)
                {
                    info!(task_id = %id, "cancelled during a refused launch");
                    let t = self
                        .stamp(TaskStatus::Cancelled, Reason::CancelledByUser)
                        .message(format!("cancelled while launching ({})", e.detail()));
                    let done = self.store.transition(id, TaskStatus::Starting, t).await?;
                    return Ok(Launch::Failed(done));
                }
                let msg = e.detail();
                warn!(task_id = %id, error = %msg, "launch refused for now; task goes back to the queue");
                let t = self
                    .stamp(TaskStatus::Queued, Reason::Requeued)
                    .message(msg);
                self.store.transition(id, TaskStatus::Starting, t).await?;
                let down = matches!(e, RuntimeError::Unavailable(_));
                Ok(Launch::Requeued { down })
            }
            Err(e) => {
                warn!(task_id = %id, error = %e.detail(), "worker launch failed");
                let t = self
                    .stamp(TaskStatus::Failed, Reason::LaunchFailed)
                    .message(e.detail());
                let done = self.store.transition(id, TaskStatus::Starting, t).await?;
                Ok(Launch::Failed(done))
            }
        }
    }
}

impl Scheduler {
    /// Launch queued tasks while there are free slots, oldest first, up to
    /// `launch_concurrency` at a time.
    pub(super) async fn admit(&mut self, report: &mut TickReport) -> StoreResult<()> {
        let now = self.clock.now();
        if self.stopping.load(Ordering::SeqCst) || self.launch_gate.is_some_and(|t| now < t) {
            return Ok(());
        }
        let free = self.cfg.max_concurrency.saturating_sub(self.active.len());
        if free == 0 {
            return Ok(());
        }
        let mut seen = HashSet::new();
        let mut waiting = self.due_queued(free, &seen, now).await?;
        if waiting.is_empty() {
            return Ok(());
        }
        let launcher = Arc::new(Launcher {
            store: self.store.clone(),
            runtime: self.runtime.clone(),
            clock: self.clock.clone(),
            callback_url: self.cfg.callback_url.clone(),
            halted: AtomicBool::new(false),
            stopping: self.stopping.clone(),
            deadline: self.cfg.launch_deadline,
            fence: self.fence,
        });
        let notify = self.handle.notify.clone();
        let width = self.cfg.launch_concurrency.max(1);
        let mut in_flight = FuturesUnordered::new();
        let mut settled: Vec<(usize, TaskId, Settled)> = Vec::new();
        let mut first_error = None;
        let mut poked = false;
        let mut refill_failed = false;
        loop {
            while in_flight.len() < width
                && !launcher.stopping.load(Ordering::SeqCst)
                && let Some((task, since)) = waiting.pop_front()
            {
                let i = seen.len();
                seen.insert(task.id);
                let span = info_span!("launch", task_id = %task.id);
                let l = launcher.clone();
                let id = task.id;
                in_flight
                    .push(async move { (i, id, l.attempt(task, since).await) }.instrument(span));
            }
            if in_flight.is_empty() {
                break;
            }
            // A task submitted while launches are in flight need not wait for them: a poke
            // from the API refills the free slots from the queue.
            let room = (width - in_flight.len()).min(
                self.cfg
                    .max_concurrency
                    .saturating_sub(self.active.len() + in_flight.len()),
            );
            let refill = room > 0
                && !refill_failed
                && waiting.is_empty()
                && !launcher.stopping.load(Ordering::SeqCst)
                && !launcher.halted.load(Ordering::SeqCst);
            let (i, id, launch) = tokio::select! {
                biased;
                next = in_flight.next() => match next {
                    Some(done) => done,
                    None => break,
                },
                () = notify.notified(), if refill => {
                    poked = true;
                    let now = self.clock.now();
                    // A failed read ends the refill, never the launches in flight: returning
                    // here would drop them half-way and leave their tasks `starting`.
                    match self.due_queued(room, &seen, now).await {
                        Ok(more) => waiting = more,
                        Err(e) => {
                            warn!(error = %e, "the queue could not be read to refill the launch window");
                            refill_failed = true;
                            first_error.get_or_insert(e);
                        }
                    }
                    continue;
                }
            };
            // No await from here to the next `next()`: the launches in flight keep going.
            match launch {
                Ok(Launch::Skipped) => {}
                Ok(Launch::Started(running)) => {
                    self.metrics.observe_started(&running);
                    self.track(&running);
                    settled.push((i, id, Settled::Started));
                }
                Ok(Launch::Requeued { down }) => {
                    let cause = if down { "unavailable" } else { "throttled" };
                    self.metrics
                        .launches_refused
                        .get_or_create(&crate::metrics::CauseLabel {
                            cause: cause.into(),
                        })
                        .inc();
                    settled.push((i, id, Settled::Requeued { down }));
                }
                Ok(Launch::Failed(done)) => {
                    self.metrics.observe_finished(&done);
                    settled.push((i, id, Settled::Failed));
                }
                Err(e) => {
                    warn!(task_id = %id, error = %e, "a launch could not be recorded in the store");
                    first_error.get_or_insert(e);
                }
            }
        }
        self.after_launches(settled, report);
        if poked {
            // The poke may also have been a cancel: step again at once for it.
            notify.notify_one();
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Up to `room` queued tasks, oldest first, that are due (not backing off) and not
    /// `seen` in this step, each with when its first refused launch ended.
    async fn due_queued(
        &mut self,
        room: usize,
        seen: &HashSet<TaskId>,
        now: Instant,
    ) -> StoreResult<VecDeque<(Task, Option<Instant>)>> {
        // Read past the tasks that are backing off or begun: they give up their turn.
        let limit = room + self.refused.len() + seen.len();
        let queued = self.store.queued(limit).await?;
        if queued.len() < limit && seen.is_empty() {
            let ids: Vec<TaskId> = queued.iter().map(|t| t.id).collect();
            self.refused.retain_queued(&ids);
        }
        Ok(queued
            .into_iter()
            .filter(|t| !seen.contains(&t.id) && self.refused.is_due(t.id, now))
            .take(room)
            .map(|t| {
                let since = self.refused.first_refusal(t.id, now);
                (t, since)
            })
            .collect())
    }

    /// Report the launches in queue order; back each refused task off on its own; pause
    /// admission briefly when the runtime was down and no launch got through (reset by the
    /// next start). Throttling alone does not pause admission: the throttled tasks wait out
    /// their own backoff, and the others go on.
    fn after_launches(&mut self, mut settled: Vec<(usize, TaskId, Settled)>, r: &mut TickReport) {
        settled.sort_by_key(|(i, _, _)| *i);
        let now = self.clock.now();
        let (mut started, mut down) = (false, false);
        for (_, id, l) in settled {
            match l {
                Settled::Started => {
                    started = true;
                    self.refused.forget(id);
                    r.launched.push(id);
                }
                Settled::Requeued { down: d } => {
                    down |= d;
                    let wait = self.refused.refused(id, now);
                    info!(task_id = %id, wait_ms = millis(wait), "launch refused; the task gives up its turn");
                    r.requeued.push(id);
                }
                Settled::Failed => {
                    self.refused.forget(id);
                    // Whatever the failed launch left (a token Secret, a task folder) goes
                    // when a finished worker's would.
                    self.gc_due.push((now + self.cfg.worker_retention, id));
                    r.finished.push(id);
                }
            }
        }
        if started {
            self.gate_backoff = super::backoff::gate_backoff();
            self.launch_gate = None;
        } else if down {
            let wait = self.gate_backoff.next().unwrap_or(super::backoff::MAX_GATE);
            warn!(
                backoff_ms = millis(wait),
                "runtime unavailable; admission pauses"
            );
            self.launch_gate = Some(now + wait);
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
