//! The scheduler: admits queued tasks under a global concurrency limit (FIFO), launches their
//! workers through the [`Runtime`], enforces deadlines and cancellation, turns worker exits
//! into terminal states, re-adopts workers after a restart and garbage-collects finished ones.
//!
//! All decisions happen in [`Scheduler::tick`], one step that tests drive directly; the loop
//! in [`Scheduler::run`] only waits for the next reason to step (a runtime event, a poke from
//! the API, a deadline or the periodic timer).

mod error;
mod outcome;
mod step;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tracing::{Instrument, info, warn};

use crate::metrics::TaskMetrics;
use crate::runtime::{EventReceiver, Runtime};
use crate::store::TaskStore;
use crate::task::TaskId;

pub use error::SchedulerError;
pub use outcome::{SUCCESS_OUTCOMES, StopCause, final_status};

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Workers that may run at once.
    pub max_concurrency: usize,
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

/// A handle the API uses to wake the scheduler after a submission or a cancel.
#[derive(Debug, Clone, Default)]
pub struct SchedulerHandle {
    notify: Arc<Notify>,
}

impl SchedulerHandle {
    pub fn poke(&self) {
        self.notify.notify_one();
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
}

pub struct Scheduler {
    store: Arc<dyn TaskStore>,
    runtime: Arc<dyn Runtime>,
    events: EventReceiver,
    cfg: SchedulerConfig,
    metrics: TaskMetrics,
    handle: SchedulerHandle,
    active: HashMap<TaskId, Active>,
    /// Finished tasks whose worker resources await cleanup, with when they may go.
    gc_due: Vec<(Instant, TaskId)>,
    last_gc_scan: Option<Instant>,
    /// Set when the runtime was unavailable; admission waits until then.
    launch_backoff_until: Option<Instant>,
    launch_backoff: Duration,
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
            active: HashMap::new(),
            gc_due: Vec::new(),
            last_gc_scan: None,
            launch_backoff_until: None,
            launch_backoff: Duration::from_millis(500),
        }
    }

    pub fn handle(&self) -> SchedulerHandle {
        self.handle.clone()
    }

    /// Number of tasks with a live worker, as the scheduler tracks them.
    pub fn active_count(&self) -> usize {
        self.active.len()
    }

    /// Recover after a start, then step until `shutdown` resolves. Running workers are left
    /// alone on shutdown, to be adopted by the next process.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.recover().await {
                Ok(n) => {
                    info!(
                        adopted_or_resolved = n,
                        "scheduler recovered state from the store"
                    );
                    break;
                }
                Err(e) => {
                    warn!(error = %e.detail(), "recovery failed; retrying");
                    tokio::select! {
                        _ = &mut shutdown => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        let notify = self.handle.notify.clone();
        loop {
            if let Err(e) = self.tick().await {
                warn!(error = %e, "scheduler step failed");
            }
            let wait = self.next_wake();
            tokio::select! {
                _ = &mut shutdown => break,
                ev = self.events.recv() => match ev {
                    Some(ev) => {
                        let task_id = ev.task_id();
                        let span = tracing::info_span!("runtime_event", task_id = %task_id);
                        if let Err(e) = self.handle_event(ev).instrument(span).await {
                            warn!(task_id = %task_id, error = %e, "handling a runtime event failed");
                        }
                    }
                    None => { warn!("runtime event channel closed"); break; }
                },
                _ = notify.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        info!(
            active = self.active.len(),
            "scheduler stopped; running workers are left to be adopted"
        );
    }

    /// How long the loop may sleep before something is due.
    fn next_wake(&self) -> Duration {
        let mut wait = self.cfg.idle_tick;
        let now = Utc::now();
        for a in self.active.values() {
            if let (Some(d), None) = (a.deadline, a.stopping) {
                let left = (d - now).to_std().unwrap_or(Duration::ZERO);
                wait = wait.min(left + Duration::from_millis(5));
            }
        }
        if let Some(until) = self.launch_backoff_until {
            wait = wait.min(until.saturating_duration_since(Instant::now()));
        }
        wait.max(Duration::from_millis(5))
    }
}
