//! The scheduler: admits queued tasks under a global concurrency limit (FIFO), launches their
//! workers through the [`Runtime`], enforces deadlines and cancellation, turns worker exits
//! into terminal states, re-adopts workers after a restart and garbage-collects finished ones.
//!
//! All decisions happen in [`Scheduler::tick`], one step that tests drive directly; the loop
//! in [`Scheduler::run`] only waits for the next reason to step (a runtime event, a poke from
//! the API, a deadline or the periodic timer). Time comes from an injected [`Clock`], so tests
//! pass deadlines and backoffs by moving the clock, not by sleeping.

mod backoff;
mod error;
mod launch;
mod recovery;
mod settle;
mod step;
mod term;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use chrono::{DateTime, Utc};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::clock::{Clock, SystemClock};
use crate::lease::{Fence, Leadership};
use crate::lifecycle::{Reason, TaskStatus};
use crate::metrics::TaskMetrics;
use crate::runtime::{EventReceiver, Runtime};
use crate::store::{TaskStore, Transition};
use crate::task::TaskId;

pub use error::SchedulerError;
pub use recovery::{RECORDED_EXIT_NOTE, SetAside};
pub use settle::{StopCause, final_status, stopped_result};

/// Launches in flight at once unless configured otherwise.
pub const DEFAULT_LAUNCH_CONCURRENCY: usize = 16;
/// How long a task's launches may keep being refused before it fails, unless configured.
pub const DEFAULT_LAUNCH_DEADLINE: Duration = Duration::from_secs(600);
/// How long a shutdown waits for the launches in flight, unless configured.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Workers that may run at once.
    pub max_concurrency: usize,
    /// Launches one step keeps in flight at once (a sliding window over the queue), so a
    /// slow or throttled launch holds one slot while the others go on. 1 launches one by one.
    pub launch_concurrency: usize,
    /// How long a task's launches may keep being refused as unavailable (throttled, API
    /// down), counted from the first refusal, before the task fails with `launch_failed`.
    pub launch_deadline: Duration,
    /// On shutdown, how long the launches in flight may take to finish; those that don't
    /// are left in `starting` for the next start to adopt or requeue.
    pub shutdown_grace: Duration,
    /// Time between SIGTERM (or pod deletion) and the forced kill.
    pub stop_grace: Duration,
    /// How long after the forced kill a worker that never reports its exit is declared gone.
    pub stop_timeout: Duration,
    /// How long a finished worker's resources (workspace, pod) are kept.
    pub worker_retention: Duration,
    /// How often to look for finished workers to clean up.
    pub gc_interval: Duration,
    /// The longest the loop sleeps without a reason to wake.
    pub idle_tick: Duration,
    /// A clean exit without a reported result is a failure (set for the agent worker).
    pub require_result: bool,
    /// Base URL the workers use to report events; `None` disables the callback.
    pub callback_url: Option<String>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            max_concurrency: 4,
            launch_concurrency: DEFAULT_LAUNCH_CONCURRENCY,
            launch_deadline: DEFAULT_LAUNCH_DEADLINE,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            stop_grace: Duration::from_secs(10),
            stop_timeout: Duration::from_secs(30),
            worker_retention: Duration::from_secs(3600),
            gc_interval: Duration::from_secs(60),
            idle_tick: Duration::from_secs(1),
            require_result: false,
            callback_url: None,
        }
    }
}

/// What the scheduler knows about a task whose worker exists.
#[derive(Debug, Clone)]
struct Active {
    deadline: Option<DateTime<Utc>>,
    stopping: Option<(StopCause, Instant)>,
}

/// A handle the API uses to wake the scheduler after a submission or a cancel, and to read
/// which tasks recovery has set aside (for `/readyz`).
#[derive(Debug, Clone)]
pub struct SchedulerHandle {
    notify: Arc<Notify>,
    set_aside: Arc<watch::Sender<Vec<SetAside>>>,
    leadership: watch::Receiver<Leadership>,
}

impl Default for SchedulerHandle {
    fn default() -> Self {
        SchedulerHandle {
            notify: Arc::default(),
            set_aside: Arc::new(watch::channel(Vec::new()).0),
            leadership: watch::channel(Leadership::Sole).1,
        }
    }
}

impl SchedulerHandle {
    pub fn poke(&self) {
        self.notify.notify_one();
    }

    /// Whether this replica runs the scheduler ([`crate::lease`]).
    pub fn leadership(&self) -> Leadership {
        self.leadership.borrow().clone()
    }

    /// Tasks that recovery could not settle and retries later, oldest first.
    pub fn set_aside(&self) -> Vec<SetAside> {
        self.set_aside.borrow().clone()
    }
}

/// What one step did; tests assert on it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    pub launched: Vec<TaskId>,
    pub finished: Vec<TaskId>,
    pub stopping: Vec<TaskId>,
    pub requeued: Vec<TaskId>,
    pub cleaned: Vec<TaskId>,
    /// Set-aside tasks that a retry settled.
    pub recovered: Vec<TaskId>,
}

/// Recovery retry while the store can't list active tasks: 200 ms, doubling, at most 30 s.
fn recovery_backoff() -> ExponentialBackoff {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(30))
        .without_max_times()
        .build()
}

pub struct Scheduler {
    store: Arc<dyn TaskStore>,
    runtime: Arc<dyn Runtime>,
    events: EventReceiver,
    cfg: SchedulerConfig,
    metrics: TaskMetrics,
    handle: SchedulerHandle,
    clock: Arc<dyn Clock>,
    active: HashMap<TaskId, Active>,
    /// Tasks recovery could not settle, kept out of the loop and retried.
    set_aside: HashMap<TaskId, recovery::Pending>,
    /// Finished tasks whose worker resources await cleanup, with when they may go.
    gc_due: Vec<(Instant, TaskId)>,
    last_gc_scan: Option<Instant>,
    /// Set when no launch of a step got through; admission waits until then.
    launch_gate: Option<Instant>,
    gate_backoff: ExponentialBackoff,
    /// Tasks whose last launch was refused, each with its own backoff.
    refused: backoff::LaunchBackoff,
    /// Set once shutdown is requested: no launch begins after it.
    stopping: Arc<AtomicBool>,
    /// The lease generation of the current term when replicas share the database
    /// ([`crate::lease`]); stamped on every status change the scheduler writes.
    fence: Option<Fence>,
}

impl Scheduler {
    pub fn new(
        store: Arc<dyn TaskStore>,
        runtime: Arc<dyn Runtime>,
        events: EventReceiver,
        cfg: SchedulerConfig,
        metrics: TaskMetrics,
    ) -> Self {
        Scheduler {
            store,
            runtime,
            events,
            cfg,
            metrics,
            handle: SchedulerHandle::default(),
            clock: Arc::new(SystemClock),
            active: HashMap::new(),
            set_aside: HashMap::new(),
            gc_due: Vec::new(),
            last_gc_scan: None,
            launch_gate: None,
            gate_backoff: backoff::gate_backoff(),
            refused: backoff::LaunchBackoff::default(),
            stopping: Arc::default(),
            fence: None,
        }
    }

    /// Run only while `leadership` says this replica leads, one term per lease generation
    /// (replicas on a shared database; see [`crate::lease::Elector`]). Without it the
    /// scheduler is the only one and always runs.
    pub fn with_leadership(mut self, leadership: watch::Receiver<Leadership>) -> Self {
        self.handle.leadership = leadership;
        self
    }

    /// Stamp this lease generation on the status changes of steps driven by hand
    /// ([`Scheduler::tick`], in tests); [`Scheduler::run`] takes it from the leadership.
    pub fn with_fence(mut self, fence: Option<Fence>) -> Self {
        self.fence = fence;
        self
    }

    /// Read time from `clock` instead of the system's (tests pass a manual clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// A status change stamped with the scheduler's clock.
    fn transition(&self, to: TaskStatus, reason: Reason) -> Transition {
        let mut t = Transition::new(to, reason).fence(self.fence);
        t.at = self.clock.now_utc();
        t
    }

    pub fn handle(&self) -> SchedulerHandle {
        self.handle.clone()
    }

    /// Number of tasks with a live worker, as the scheduler tracks them.
    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    /// How long the loop may sleep before something is due.
    fn next_wake(&self) -> Duration {
        let mut wait = self.cfg.idle_tick;
        let (now, now_utc) = (self.clock.now(), self.clock.now_utc());
        for a in self.active.values() {
            if let (Some(d), None) = (a.deadline, a.stopping) {
                let left = (d - now_utc).to_std().unwrap_or(Duration::ZERO);
                wait = wait.min(left + Duration::from_millis(5));
            }
        }
        let retries = self.set_aside.values().map(recovery::Pending::next_try);
        // A refused task's turn comes back (when a slot is free to launch it), or the gate
        // lifts; either only counts while still ahead, or the loop would spin.
        let free = self.active.len() < self.cfg.max_concurrency;
        let due = self.refused.next_due().filter(|_| free);
        let ahead = |t: &Instant| *t > now;
        let launches = self.launch_gate.filter(ahead).or(due.filter(ahead));
        for until in launches.into_iter().chain(retries) {
            wait = wait.min(until.saturating_duration_since(now));
        }
        wait.max(Duration::from_millis(5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(b: ExponentialBackoff, n: usize) -> Vec<u128> {
        b.take(n).map(|d| d.as_millis()).collect()
    }

    #[test]
    fn backoffs_double_up_to_their_cap_and_never_give_up() {
        let recovery = millis(recovery_backoff(), 10);
        assert_eq!(recovery[..4], [200, 400, 800, 1600]);
        assert_eq!(recovery[9], 30000);
        assert_eq!(recovery_backoff().nth(1000), Some(Duration::from_secs(30)));
    }
}
