//! The body of one scheduler step: runtime events, stops, admission and garbage collection.
//! (The recovery pass that runs before the first step lives in `recovery.rs`.)

use std::time::Duration;

use tracing::{debug, info, warn};

use super::{Active, Scheduler, StopCause, TickReport, final_status, stopped_result};
use crate::lifecycle::Reason;
use crate::runtime::{ExitInfo, RuntimeEvent};
use crate::store::{StoreError, StoreResult};
use crate::task::{Task, TaskId};

impl Scheduler {
    /// One step: apply pending runtime events, stop what must stop, admit queued tasks, and
    /// clean up old workers.
    pub async fn tick(&mut self) -> StoreResult<TickReport> {
        let mut report = TickReport::default();
        while let Ok(ev) = self.events.try_recv() {
            let task_id = ev.task_id();
            if self.handle_event(ev).await?.is_some() {
                report.finished.push(task_id);
            }
        }
        self.retry_set_aside(&mut report).await;
        self.enforce(&mut report).await?;
        self.admit(&mut report).await?;
        self.collect_garbage(&mut report).await;
        // Gauges of tasks by status are refreshed from the store when /metrics is scraped.
        Ok(report)
    }

    pub(super) fn track(&mut self, task: &Task) {
        self.active.insert(
            task.id,
            Active {
                deadline: task.deadline(),
                stopping: None,
            },
        );
    }

    /// Apply one runtime event. Returns the finished task, if the event finished one.
    pub(super) async fn handle_event(&mut self, ev: RuntimeEvent) -> StoreResult<Option<Task>> {
        let (task_id, exit) = match ev {
            RuntimeEvent::Exited { task_id, exit } => (task_id, exit),
            RuntimeEvent::Lost { task_id, message } => (
                task_id,
                ExitInfo {
                    reason: Some(Reason::WorkerLost),
                    message: Some(message),
                    ..Default::default()
                },
            ),
        };
        let Some(task) = self.store.get(task_id).await? else {
            warn!(task_id = %task_id, "runtime event for an unknown task");
            return Ok(None);
        };
        if !task.status.is_active() {
            debug!(task_id = %task_id, status = %task.status, "runtime event for a settled task");
            self.active.remove(&task_id);
            return Ok(None);
        }
        let stop = self
            .active
            .get(&task_id)
            .and_then(|a| a.stopping.map(|(c, _)| c));
        self.finish(&task, stop, exit).await.map(Some)
    }

    pub(super) async fn finish(
        &mut self,
        task: &Task,
        stop: Option<StopCause>,
        exit: ExitInfo,
    ) -> StoreResult<Task> {
        let (status, reason) =
            final_status(stop, &exit, task.result.as_ref(), self.cfg.require_result);
        let mut t = self.transition(status, reason.clone()).exit_code(exit.code);
        t.message = exit.message.clone();
        // The worker only knew it was told to stop; the outcome names why. Stored with the
        // (fenced) move, so a deposed scheduler can't write it.
        t.result = stopped_result(stop, &exit, task.result.as_ref());
        let done = match self.store.transition(task.id, task.status, t).await {
            Ok(done) => done,
            Err(StoreError::StatusChanged { .. }) => {
                // Someone settled it first; reflect the store.
                self.active.remove(&task.id);
                return self.store.get(task.id).await?.ok_or(StoreError::NotFound);
            }
            Err(e) => return Err(e),
        };
        info!(task_id = %task.id, status = %status, reason = %reason, exit_code = ?exit.code, "task finished");
        self.active.remove(&task.id);
        self.metrics.observe_finished(&done);
        self.gc_due
            .push((self.clock.now() + self.cfg.worker_retention, task.id));
        Ok(done)
    }

    /// Stop workers whose task was cancelled or ran out of time; give up on workers that
    /// never report their exit after being killed.
    async fn enforce(&mut self, report: &mut TickReport) -> StoreResult<()> {
        let cancel_requested: Vec<TaskId> = if self.active.is_empty() {
            Vec::new()
        } else {
            self.store
                .active()
                .await?
                .into_iter()
                .filter(|t| t.cancel_requested)
                .map(|t| t.id)
                .collect()
        };
        let (now, now_utc) = (self.clock.now(), self.clock.now_utc());
        let mut to_stop = Vec::new();
        let mut overdue = Vec::new();
        for (id, a) in &self.active {
            match a.stopping {
                None if cancel_requested.contains(id) => to_stop.push((*id, StopCause::Cancel)),
                None if a.deadline.is_some_and(|d| d <= now_utc) => {
                    to_stop.push((*id, StopCause::Deadline))
                }
                Some((cause, since))
                    if now.duration_since(since) > self.cfg.stop_grace + self.cfg.stop_timeout =>
                {
                    overdue.push((*id, cause))
                }
                _ => {}
            }
        }
        for (id, cause) in to_stop {
            info!(task_id = %id, cause = ?cause, "stopping worker");
            if let Err(e) = self.runtime.stop(id, self.cfg.stop_grace).await {
                warn!(task_id = %id, error = %e.detail(), "stopping the worker failed; will retry");
                continue;
            }
            if let Some(a) = self.active.get_mut(&id) {
                a.stopping = Some((cause, now));
            }
            report.stopping.push(id);
        }
        for (id, cause) in overdue {
            warn!(task_id = %id, "worker never reported its exit after being killed");
            if let Some(task) = self.store.get(id).await? {
                let exit = ExitInfo {
                    message: Some("worker did not exit after being killed".into()),
                    ..Default::default()
                };
                self.finish(&task, Some(cause), exit).await?;
                report.finished.push(id);
            }
        }
        Ok(())
    }

    /// Remove worker resources of tasks finished longer than the retention ago. Also finds
    /// leftovers from earlier runs of the orchestrator, once per `gc_interval`.
    async fn collect_garbage(&mut self, report: &mut TickReport) {
        let now = self.clock.now();
        let scan_due = self
            .last_gc_scan
            .is_none_or(|t| now.duration_since(t) >= self.cfg.gc_interval);
        if scan_due {
            self.last_gc_scan = Some(now);
            self.scan_leftovers().await;
        }
        let (due, later): (Vec<_>, Vec<_>) = self.gc_due.drain(..).partition(|(at, _)| *at <= now);
        self.gc_due = later;
        for (_, id) in due {
            match self.runtime.cleanup(id).await {
                Ok(()) => report.cleaned.push(id),
                Err(e) => warn!(task_id = %id, error = %e.detail(), "worker cleanup failed"),
            }
        }
    }

    async fn scan_leftovers(&mut self) {
        let ids = match self.runtime.workers().await {
            Ok(ids) => ids,
            Err(e) => return warn!(error = %e.detail(), "listing workers for cleanup failed"),
        };
        let retention = chrono::Duration::from_std(self.cfg.worker_retention).unwrap_or_default();
        for id in ids {
            if self.active.contains_key(&id) || self.gc_due.iter().any(|(_, d)| *d == id) {
                continue;
            }
            let due = match self.store.get(id).await {
                Ok(Some(t)) => match (t.status.is_terminal(), t.finished_at) {
                    (true, Some(f)) => {
                        let left = (f + retention - self.clock.now_utc())
                            .to_std()
                            .unwrap_or(Duration::ZERO);
                        Some(self.clock.now() + left)
                    }
                    _ => None,
                },
                // A worker for a task the store never heard of.
                Ok(None) => Some(self.clock.now()),
                Err(_) => None,
            };
            if let Some(at) = due {
                self.gc_due.push((at, id));
            }
        }
    }
}
