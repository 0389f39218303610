//! The worker runtime, as a trait: how a task's worker is created, stopped, found again after
//! a restart, and cleaned up. The local process runtime (`ao-runtime-local`) implements it
//! today; a Kubernetes runtime implements it next. The scheduler only sees this trait.
//!
//! Runtimes report what happens to workers asynchronously, as [`RuntimeEvent`]s on a channel
//! the scheduler owns. Worker output and the end of a worker go through core's
//! [`crate::output`] pipeline, which stores the output before it sends the end event.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::lifecycle::Reason;
use crate::task::{Task, TaskId, TaskSpec, WorkerRef};
use crate::validation::ValidationError;

/// Where and how a worker reports its events and result back to the orchestrator.
#[derive(Clone)]
pub struct Callback {
    /// Base URL of the orchestrator API as seen from the worker.
    pub url: String,
    /// Per-task bearer token. Secret: never logged, never on a command line.
    pub token: String,
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callback")
            .field("url", &self.url)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Everything a runtime needs to start one task's worker.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub task: Task,
    pub callback: Option<Callback>,
}

/// How a worker ended, as the runtime saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// A runtime-specific cause that overrides the exit code, such as `oom_killed`, or
    /// `deadline_exceeded` when the platform enforced the deadline itself.
    pub reason: Option<Reason>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RuntimeEvent {
    /// The worker ended. Its output has been fully stored before this is sent.
    Exited { task_id: TaskId, exit: ExitInfo },
    /// The worker vanished without an exit status.
    Lost { task_id: TaskId, message: String },
}

impl RuntimeEvent {
    pub fn task_id(&self) -> TaskId {
        match self {
            RuntimeEvent::Exited { task_id, .. } | RuntimeEvent::Lost { task_id, .. } => *task_id,
        }
    }
}

pub type EventSender = mpsc::UnboundedSender<RuntimeEvent>;
pub type EventReceiver = mpsc::UnboundedReceiver<RuntimeEvent>;

/// What a runtime found when asked about a task's worker after a restart.
#[derive(Debug, Clone, PartialEq)]
pub enum Adoption {
    /// The worker still runs; the runtime follows it again and will send its exit event.
    Alive(WorkerRef),
    /// The worker finished while nobody watched.
    Exited(ExitInfo),
    /// No worker exists for the task.
    NotFound,
}

/// The cause of a [`RuntimeError`]: whatever the runtime's own layer failed with (a Kubernetes
/// API error, an I/O error, or a plain message), kept whole so the chain survives.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a runtime call failed. The variant says what the scheduler does about it; the source
/// is the cause, kept as an error (not flattened into a string) so callers can walk or
/// downcast the chain. [`RuntimeError::detail`] renders the whole chain for a person.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A passing failure (API unreachable, 5xx): the task goes back to the queue, and no
    /// other launch begins in this scheduler step.
    #[error("runtime temporarily unavailable")]
    Unavailable(#[source] BoxError),
    /// The runtime's API throttled this call (HTTP 429, after the client's own retries): the
    /// task goes back to the queue and backs off on its own, while the other launches go on.
    #[error("runtime API throttled the launch")]
    Throttled(#[source] BoxError),
    /// The worker cannot be created for this task.
    #[error("worker launch failed")]
    Launch(#[source] BoxError),
    #[error("runtime error")]
    Other(#[source] BoxError),
}

impl RuntimeError {
    pub fn unavailable(cause: impl Into<BoxError>) -> Self {
        RuntimeError::Unavailable(cause.into())
    }

    pub fn throttled(cause: impl Into<BoxError>) -> Self {
        RuntimeError::Throttled(cause.into())
    }

    /// True for the failures that send the task back to the queue.
    pub fn is_passing(&self) -> bool {
        matches!(
            self,
            RuntimeError::Unavailable(_) | RuntimeError::Throttled(_)
        )
    }

    pub fn launch(cause: impl Into<BoxError>) -> Self {
        RuntimeError::Launch(cause.into())
    }

    pub fn other(cause: impl Into<BoxError>) -> Self {
        RuntimeError::Other(cause.into())
    }

    /// The error and every cause below it, joined by `: ` (for task messages and logs).
    pub fn detail(&self) -> String {
        error_chain(self)
    }
}

/// An error and every cause below it, joined by `: `.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// `local`, `kubernetes`.
    fn name(&self) -> &'static str;

    /// Start what the runtime runs in the background (a Kubernetes pod watch, say). Called
    /// once, at start-up, before any other method; a runtime with nothing to start keeps
    /// the default.
    async fn start(&self) -> Result<(), RuntimeError> {
        Ok(())
    }

    /// Refuse, at admission, a task this runtime could never run (e.g. too large for a pod).
    fn admit(&self, _spec: &TaskSpec) -> Result<(), ValidationError> {
        Ok(())
    }

    /// The name the task's worker has (or will have) in this runtime, when it derives from
    /// the task id alone and is therefore known at admission: the pod name on Kubernetes.
    /// `None` where the name is only known once the worker runs (a local process id).
    fn worker_name(&self, _id: TaskId) -> Option<String> {
        None
    }

    /// Create the worker. Must be idempotent per task id: if a worker already exists for the
    /// task, return it instead of creating a second one.
    async fn launch(&self, spec: LaunchSpec) -> Result<WorkerRef, RuntimeError>;

    /// Ask the worker to stop, and force it after `grace`. The exit arrives as an event.
    async fn stop(&self, task_id: TaskId, grace: Duration) -> Result<(), RuntimeError>;

    /// Find the task's worker after a restart and resume following it.
    async fn adopt(&self, task: &Task) -> Result<Adoption, RuntimeError>;

    /// Stop following every worker, without touching the workers: this replica stopped
    /// leading, and the next leader adopts them ([`crate::lease`]). Output collection for
    /// them stops here; the new leader's adoption resumes it. A runtime that follows nothing
    /// in the background keeps the default.
    async fn release_all(&self) {}

    /// Task ids that still have worker resources (finished or not), for garbage collection.
    async fn workers(&self) -> Result<Vec<TaskId>, RuntimeError>;

    /// Remove a finished worker's resources. Its output is already in the store.
    async fn cleanup(&self, task_id: TaskId) -> Result<(), RuntimeError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_errors_keep_their_cause_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let e = RuntimeError::unavailable(io);
        let source = std::error::Error::source(&e).expect("a source");
        let io = source
            .downcast_ref::<std::io::Error>()
            .expect("the cause is the original error, not a string");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
        assert_eq!(e.to_string(), "runtime temporarily unavailable");
        assert_eq!(
            e.detail(),
            "runtime temporarily unavailable: connection refused"
        );
        assert_eq!(
            RuntimeError::launch("no image").detail(),
            "worker launch failed: no image"
        );
    }
}
