//! Prometheus metrics about tasks, shared by the API (creation) and the scheduler (finish).
//! Gauges of tasks by status are refreshed from the store at scrape time, so they are right
//! even after a restart.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::lifecycle::TaskStatus;
use crate::task::{Task, TaskResult};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

/// Why a launch was refused for now: `throttled` (429) or `unavailable` (down, 5xx).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabel {
    pub cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabel {
    pub kind: String,
}

fn duration_histogram() -> Histogram {
    // 0.5 s .. ~18 h
    Histogram::new(exponential_buckets(0.5, 2.0, 18))
}

#[derive(Clone)]
pub struct TaskMetrics {
    pub created: Counter,
    pub finished: Family<StatusLabel, Counter>,
    pub by_status: Family<StatusLabel, Gauge>,
    pub queue_depth: Gauge,
    pub duration: Family<StatusLabel, Histogram, fn() -> Histogram>,
    pub queue_wait: Histogram,
    pub outcomes: Family<OutcomeLabel, Counter>,
    pub cost_usd: Counter<f64, std::sync::atomic::AtomicU64>,
    pub cost_per_task: Histogram,
    pub tokens: Family<TokenLabel, Counter>,
    pub tokens_per_task: Family<TokenLabel, Histogram, fn() -> Histogram>,
    pub turns: Counter,
    pub turns_per_task: Histogram,
    /// Tasks recovery could not settle after a restart, set aside and retried.
    pub recovery_set_aside: Gauge,
    /// Launches the runtime refused for now (the task went back to the queue), by cause.
    pub launches_refused: Family<CauseLabel, Counter>,
    /// 1 while this replica runs the scheduler (always, with one process), 0 while it follows.
    pub scheduler_leader: Gauge,
    /// Leadership terms this replica began (its first start counts as one).
    pub scheduler_terms: Counter,
}

impl TaskMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = TaskMetrics {
            created: Counter::default(),
            finished: Family::default(),
            by_status: Family::default(),
            queue_depth: Gauge::default(),
            duration: Family::new_with_constructor(duration_histogram),
            queue_wait: duration_histogram(),
            outcomes: Family::default(),
            cost_usd: Counter::default(),
            cost_per_task: Histogram::new(exponential_buckets(0.001, 2.0, 20)),
            tokens: Family::default(),
            tokens_per_task: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(100.0, 2.0, 20))
            }),
            turns: Counter::default(),
            turns_per_task: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            recovery_set_aside: Gauge::default(),
            launches_refused: Family::default(),
            scheduler_leader: Gauge::default(),
            scheduler_terms: Counter::default(),
        };
        let r = registry.sub_registry_with_prefix("ao");
        r.register(
            "scheduler_leader",
            "1 while this replica runs the scheduler (always with one process), 0 while it follows",
            m.scheduler_leader.clone(),
        );
        r.register(
            "scheduler_terms",
            "Leadership terms this replica began",
            m.scheduler_terms.clone(),
        );
        r.register(
            "tasks_created",
            "Tasks accepted by the API",
            m.created.clone(),
        );
        r.register(
            "tasks_finished",
            "Tasks that reached a terminal status, by status",
            m.finished.clone(),
        );
        r.register("tasks", "Tasks by current status", m.by_status.clone());
        r.register(
            "queue_depth",
            "Tasks waiting in the queue",
            m.queue_depth.clone(),
        );
        r.register(
            "task_duration_seconds",
            "Run time from start to finish, by final status",
            m.duration.clone(),
        );
        r.register(
            "task_queue_wait_seconds",
            "Time from submission to start",
            m.queue_wait.clone(),
        );
        r.register(
            "task_outcomes",
            "Agent outcomes of finished tasks, by kind",
            m.outcomes.clone(),
        );
        r.register(
            "agent_cost_usd",
            "Total agent cost in US dollars",
            m.cost_usd.clone(),
        );
        r.register(
            "agent_task_cost_usd",
            "Agent cost per finished task",
            m.cost_per_task.clone(),
        );
        r.register(
            "agent_tokens",
            "Agent tokens used, by kind (input, output)",
            m.tokens.clone(),
        );
        r.register(
            "agent_task_tokens",
            "Agent tokens per finished task, by kind",
            m.tokens_per_task.clone(),
        );
        r.register("agent_turns", "Agent turns, total", m.turns.clone());
        r.register(
            "launches_refused",
            "Worker launches refused for now, the task back in the queue, by cause (throttled, unavailable)",
            m.launches_refused.clone(),
        );
        r.register(
            "agent_task_turns",
            "Agent turns per finished task",
            m.turns_per_task.clone(),
        );
        r.register(
            "recovery_set_aside",
            "Tasks that recovery after a restart could not settle, set aside and retried",
            m.recovery_set_aside.clone(),
        );
        m
    }

    /// Refresh the by-status gauges from a store count.
    pub fn set_counts(&self, counts: &[(TaskStatus, u64)]) {
        for status in TaskStatus::ALL {
            let n = counts
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |(_, n)| *n);
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            self.by_status.get_or_create(&label(status)).set(n);
            if status == TaskStatus::Queued {
                self.queue_depth.set(n);
            }
        }
    }

    /// Record a task that just reached a terminal status.
    pub fn observe_finished(&self, task: &Task) {
        let l = label(task.status);
        self.finished.get_or_create(&l).inc();
        if let (Some(s), Some(f)) = (task.started_at, task.finished_at) {
            let secs = (f - s).num_milliseconds().max(0) as f64 / 1000.0;
            self.duration.get_or_create(&l).observe(secs);
        }
        if let Some(r) = &task.result {
            self.observe_result(r);
        }
    }

    fn observe_result(&self, r: &TaskResult) {
        self.outcomes
            .get_or_create(&OutcomeLabel {
                outcome: r.outcome.to_string(),
            })
            .inc();
        if let Some(c) = r.cost_usd.filter(|c| c.is_finite() && *c >= 0.0) {
            self.cost_usd.inc_by(c);
            self.cost_per_task.observe(c);
        }
        for (kind, n) in [("input", r.input_tokens), ("output", r.output_tokens)] {
            if let Some(n) = n {
                let k = TokenLabel { kind: kind.into() };
                self.tokens.get_or_create(&k).inc_by(n);
                self.tokens_per_task.get_or_create(&k).observe(n as f64);
            }
        }
        if let Some(t) = r.num_turns {
            self.turns.inc_by(u64::from(t));
            self.turns_per_task.observe(f64::from(t));
        }
    }

    pub fn observe_started(&self, task: &Task) {
        if let Some(s) = task.started_at {
            let secs = (s - task.created_at).num_milliseconds().max(0) as f64 / 1000.0;
            self.queue_wait.observe(secs);
        }
    }
}

fn label(status: TaskStatus) -> StatusLabel {
    StatusLabel {
        status: status.as_str().to_string(),
    }
}
