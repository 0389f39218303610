//! Recovery after a restart: every task the store calls active is matched with what the
//! runtime knows of its worker, and settled (adopted, finished from its recorded exit,
//! requeued or failed as lost).
//!
//! One task that can't be settled never holds up the others. It is *set aside*: logged with
//! its `task_id`, kept out of the scheduler's loop, counted in `ao_recovery_set_aside`, listed
//! on `/readyz`, and retried with backoff on later steps. Why retry rather than fail it: the
//! usual cause is a runtime that can't answer (API down), and then the worker may well still
//! run, so failing the task would be a guess that leaves a worker nobody watches. Retries go
//! on (at most every 5 minutes) until one succeeds or the task is settled some other way (its
//! worker's exit event arrives); a set-aside task takes no worker slot meanwhile.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::time::Instant;
use tracing::{Instrument, info, info_span, warn};
use utoipa::ToSchema;

use super::{Scheduler, SchedulerError, TickReport};
use crate::lifecycle::{Reason, TaskStatus};
use crate::runtime::{Adoption, ExitInfo};
use crate::store::StoreResult;
use crate::task::{Task, TaskId};

/// Added to the message of a task settled from the exit its worker recorded while the
/// orchestrator was down, so that path can be told from an exit the scheduler watched.
pub const RECORDED_EXIT_NOTE: &str =
    "settled from the exit the worker recorded while the orchestrator was down";

/// A task recovery could not settle yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SetAside {
    pub task_id: TaskId,
    /// The last error, for people.
    pub reason: String,
    /// Recovery attempts so far.
    pub attempts: u32,
    pub since: DateTime<Utc>,
}

/// A set-aside task and when to try it again.
#[derive(Debug)]
pub(super) struct Pending {
    entry: SetAside,
    next_try: Instant,
    backoff: ExponentialBackoff,
}

impl Pending {
    pub(super) fn next_try(&self) -> Instant {
        self.next_try
    }
}

/// How long a set-aside task waits between attempts: 1 s, doubling, at most 5 min.
fn retry_backoff() -> ExponentialBackoff {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(Duration::from_secs(300))
        .without_max_times()
        .build()
}

impl Scheduler {
    /// Settle every task the store says is active: adopt live workers, finish the rest. A
    /// task that fails is set aside instead of failing the whole pass. Returns how many tasks
    /// it looked at; errs only when the store can't list them.
    pub async fn recover(&mut self) -> StoreResult<usize> {
        let tasks = self.store.active().await?;
        let n = tasks.len();
        for task in tasks {
            let id = task.id;
            let span = info_span!("recover", task_id = %id);
            if let Err(e) = self.recover_one(task).instrument(span).await {
                self.set_aside(id, &e);
            }
        }
        self.publish_set_aside();
        Ok(n)
    }

    /// Try again the set-aside tasks whose time has come.
    pub(super) async fn retry_set_aside(&mut self, report: &mut TickReport) {
        let now = self.clock.now();
        let due: Vec<TaskId> = self
            .set_aside
            .iter()
            .filter(|(_, p)| p.next_try <= now)
            .map(|(id, _)| *id)
            .collect();
        if due.is_empty() {
            return;
        }
        for id in due {
            let span = info_span!("recover", task_id = %id);
            let result = async {
                match self.store.get(id).await.map_err(SchedulerError::from)? {
                    Some(task) if task.status.is_active() => self.recover_one(task).await,
                    // Settled meanwhile (an exit event, a cancel): nothing left to recover.
                    _ => Ok(()),
                }
            }
            .instrument(span)
            .await;
            match result {
                Ok(()) => {
                    info!(task_id = %id, "set-aside task recovered");
                    self.set_aside.remove(&id);
                    report.recovered.push(id);
                }
                Err(e) => self.set_aside(id, &e),
            }
        }
        self.publish_set_aside();
    }

    /// Keep `id` out of the loop after a failed recovery, to be tried again later.
    fn set_aside(&mut self, id: TaskId, e: &SchedulerError) {
        let now = self.clock.now();
        let since = self.clock.now_utc();
        let p = self.set_aside.entry(id).or_insert_with(|| Pending {
            entry: SetAside {
                task_id: id,
                reason: String::new(),
                attempts: 0,
                since,
            },
            next_try: now,
            backoff: retry_backoff(),
        });
        p.entry.attempts += 1;
        p.entry.reason = e.detail();
        let wait = p.backoff.next().unwrap_or(Duration::from_secs(300));
        p.next_try = now + wait;
        warn!(
            task_id = %id,
            error = %e.detail(),
            attempts = p.entry.attempts,
            retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            "recovery failed for this task; set aside, the others go on"
        );
    }

    /// Show the set-aside tasks to the API and the metrics.
    pub(super) fn publish_set_aside(&self) {
        let mut list: Vec<SetAside> = self.set_aside.values().map(|p| p.entry.clone()).collect();
        list.sort_by_key(|s| s.since);
        let n = i64::try_from(list.len()).unwrap_or(i64::MAX);
        self.metrics.recovery_set_aside.set(n);
        self.handle.set_aside.send_replace(list);
    }

    pub(super) async fn recover_one(&mut self, task: Task) -> Result<(), SchedulerError> {
        let adoption =
            self.runtime
                .adopt(&task)
                .await
                .map_err(|source| SchedulerError::Runtime {
                    task_id: task.id,
                    source,
                })?;
        match adoption {
            Adoption::Alive(worker) => {
                info!(task_id = %task.id, worker = %worker.name, "adopted a running worker");
                let task = if task.status == TaskStatus::Starting {
                    let t = self
                        .transition(TaskStatus::Running, Reason::WorkerAdopted)
                        .worker(worker);
                    self.store
                        .transition(task.id, TaskStatus::Starting, t)
                        .await?
                } else {
                    task
                };
                self.track(&task);
            }
            Adoption::Exited(exit) => {
                info!(task_id = %task.id, code = ?exit.code, "worker finished while the orchestrator was down");
                self.finish_recorded(task, exit).await?;
            }
            Adoption::NotFound if task.status == TaskStatus::Starting => {
                info!(task_id = %task.id, "worker was never created; requeueing");
                let t = self.transition(TaskStatus::Queued, Reason::Requeued);
                self.store
                    .transition(task.id, TaskStatus::Starting, t)
                    .await?;
            }
            Adoption::NotFound => {
                warn!(task_id = %task.id, "worker is gone");
                let t = self
                    .transition(TaskStatus::Failed, Reason::WorkerLost)
                    .message("the worker disappeared while the orchestrator was not watching");
                let done = self.store.transition(task.id, task.status, t).await?;
                self.metrics.observe_finished(&done);
            }
        }
        Ok(())
    }

    /// Settle a task from the exit its worker recorded while nobody watched. A task still in
    /// `starting` (the orchestrator died between launching the worker and recording it
    /// `running`) first moves to `running`, with the reason `recorded_exit`: the lifecycle
    /// only finishes tasks that ran.
    async fn finish_recorded(&mut self, task: Task, mut exit: ExitInfo) -> StoreResult<()> {
        let task = if task.status == TaskStatus::Starting {
            let t = self
                .transition(TaskStatus::Running, Reason::RecordedExit)
                .message("the worker was started, then exited while the orchestrator was down");
            self.store
                .transition(task.id, TaskStatus::Starting, t)
                .await?
        } else {
            task
        };
        exit.message = Some(match exit.message.take() {
            Some(m) => format!("{m} ({RECORDED_EXIT_NOTE})"),
            None => RECORDED_EXIT_NOTE.to_string(),
        });
        self.finish(&task, None, exit).await.map(|_| ())
    }
}
