//! The task lifecycle: statuses, machine-readable reasons, and the one function that decides
//! which moves are legal.
//!
//! Every status change in the system goes through [`check_transition`]; the stores call it
//! before they write, so an illegal move can never reach the database, whoever asks for it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use utoipa::ToSchema;

/// Where a task is in its life. `queued → starting → running → (terminal)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Accepted and stored, waiting for a free worker slot.
    Queued,
    /// A worker is being created for it.
    Starting,
    /// A worker runs it.
    Running,
    /// The worker finished and delivered.
    Succeeded,
    /// The worker failed, was lost, or delivered nothing verifiable.
    Failed,
    /// Cancelled by a user.
    Cancelled,
    /// Stopped because its deadline passed.
    TimedOut,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 7] = [
        TaskStatus::Queued,
        TaskStatus::Starting,
        TaskStatus::Running,
        TaskStatus::Succeeded,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
        TaskStatus::TimedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Queued => "queued",
            TaskStatus::Starting => "starting",
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
            TaskStatus::TimedOut => "timed_out",
        }
    }

    /// True once nothing more will happen to the task.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskStatus::Succeeded
                | TaskStatus::Failed
                | TaskStatus::Cancelled
                | TaskStatus::TimedOut
        )
    }

    /// True while a worker may exist for the task.
    pub fn is_active(self) -> bool {
        matches!(self, TaskStatus::Starting | TaskStatus::Running)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "unknown task status `{0}` (expected one of queued, starting, running, succeeded, failed, cancelled, timed_out)"
)]
pub struct UnknownStatus(pub String);

/// Why a task moved to its current status. Serialized as a stable snake_case string, for
/// example `exit_code_1` or `deadline_exceeded`, so clients can branch on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Accepted by the API.
    Submitted,
    /// Picked from the queue by the scheduler.
    Scheduled,
    /// Returned to the queue because its worker was never created before a restart.
    Requeued,
    /// The runtime reports the worker is up.
    WorkerStarted,
    /// A worker that outlived an orchestrator restart was adopted again.
    WorkerAdopted,
    /// The worker was started and exited while the orchestrator was down, before it was
    /// recorded `running`; its recorded exit settles the task next.
    RecordedExit,
    /// The worker exited 0 (and, for agent workers, delivered).
    Completed,
    /// The worker exited with this non-zero code.
    ExitCode(i32),
    /// The worker was killed by this signal, not by us.
    Signal(i32),
    /// The worker disappeared (deleted, or gone across a restart).
    WorkerLost,
    /// The runtime could not create the worker.
    LaunchFailed,
    /// The deadline (`timeout_seconds`) passed.
    DeadlineExceeded,
    /// A user cancelled it.
    CancelledByUser,
    /// Any other reason, named by an adapter or a later stage (for example `oom_killed`,
    /// `image_pull_failed`, `budget_exceeded`, `no_changes`).
    Other(String),
}

impl Reason {
    pub fn as_string(&self) -> String {
        match self {
            Reason::Submitted => "submitted".into(),
            Reason::Scheduled => "scheduled".into(),
            Reason::Requeued => "requeued".into(),
            Reason::WorkerStarted => "worker_started".into(),
            Reason::WorkerAdopted => "worker_adopted".into(),
            Reason::RecordedExit => "recorded_exit".into(),
            Reason::Completed => "completed".into(),
            Reason::ExitCode(c) => format!("exit_code_{c}"),
            Reason::Signal(s) => format!("signal_{s}"),
            Reason::WorkerLost => "worker_lost".into(),
            Reason::LaunchFailed => "launch_failed".into(),
            Reason::DeadlineExceeded => "deadline_exceeded".into(),
            Reason::CancelledByUser => "cancelled_by_user".into(),
            Reason::Other(s) => s.clone(),
        }
    }

    pub fn parse(s: &str) -> Reason {
        let fixed = [
            Reason::Submitted,
            Reason::Scheduled,
            Reason::Requeued,
            Reason::WorkerStarted,
            Reason::WorkerAdopted,
            Reason::RecordedExit,
            Reason::Completed,
            Reason::WorkerLost,
            Reason::LaunchFailed,
            Reason::DeadlineExceeded,
            Reason::CancelledByUser,
        ];
        if let Some(r) = fixed.into_iter().find(|r| r.as_string() == s) {
            return r;
        }
        if let Some(code) = s.strip_prefix("exit_code_").and_then(|c| c.parse().ok()) {
            return Reason::ExitCode(code);
        }
        if let Some(sig) = s.strip_prefix("signal_").and_then(|c| c.parse().ok()) {
            return Reason::Signal(sig);
        }
        Reason::Other(s.to_string())
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_string())
    }
}

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Reason::parse(&String::deserialize(d)?))
    }
}

impl utoipa::PartialSchema for Reason {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "Machine-readable reason for the last status change, e.g. `submitted`, \
                 `worker_started`, `completed`, `exit_code_1`, `deadline_exceeded`, \
                 `cancelled_by_user`, `worker_lost`.",
            ))
            .into()
    }
}
impl ToSchema for Reason {}

/// An illegal status change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal transition {from} -> {to}")]
pub struct TransitionError {
    pub from: TaskStatus,
    pub to: TaskStatus,
}

/// The single authority on legal moves. Pure, so it is tested exhaustively below.
pub fn check_transition(from: TaskStatus, to: TaskStatus) -> Result<(), TransitionError> {
    use TaskStatus::*;
    let ok = match from {
        Queued => matches!(to, Starting | Cancelled),
        // `Starting → Queued` is the restart path: the worker was never created.
        Starting => matches!(to, Running | Queued | Failed | Cancelled | TimedOut),
        Running => matches!(to, Succeeded | Failed | Cancelled | TimedOut),
        Succeeded | Failed | Cancelled | TimedOut => false,
    };
    if ok {
        Ok(())
    } else {
        Err(TransitionError { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskStatus::*;

    #[test]
    fn happy_path_is_legal() {
        for (a, b) in [
            (Queued, Starting),
            (Starting, Running),
            (Running, Succeeded),
        ] {
            assert_eq!(check_transition(a, b), Ok(()));
        }
    }

    #[test]
    fn terminal_states_are_final() {
        for from in TaskStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in TaskStatus::ALL {
                assert!(check_transition(from, to).is_err(), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn no_self_transitions_and_no_skipping_start() {
        for s in TaskStatus::ALL {
            assert!(check_transition(s, s).is_err(), "{s} -> {s}");
        }
        for to in [Running, Succeeded, Failed, TimedOut, Queued] {
            assert!(check_transition(Queued, to).is_err(), "queued -> {to}");
        }
        assert!(check_transition(Running, Queued).is_err());
        assert!(check_transition(Running, Starting).is_err());
    }

    #[test]
    fn exact_legal_set() {
        let legal: Vec<_> = TaskStatus::ALL
            .into_iter()
            .flat_map(|a| TaskStatus::ALL.into_iter().map(move |b| (a, b)))
            .filter(|(a, b)| check_transition(*a, *b).is_ok())
            .collect();
        assert_eq!(legal.len(), 2 + 5 + 4, "{legal:?}");
    }

    #[test]
    fn reasons_round_trip() {
        for r in [
            Reason::Submitted,
            Reason::RecordedExit,
            Reason::ExitCode(1),
            Reason::ExitCode(-3),
            Reason::Signal(9),
            Reason::WorkerLost,
            Reason::DeadlineExceeded,
            Reason::CancelledByUser,
            Reason::Other("oom_killed".into()),
        ] {
            assert_eq!(Reason::parse(&r.as_string()), r);
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<Reason>(&json).unwrap(), r);
        }
        assert_eq!(Reason::ExitCode(1).to_string(), "exit_code_1");
    }

    #[test]
    fn status_parse() {
        for s in TaskStatus::ALL {
            assert_eq!(s.as_str().parse::<TaskStatus>().unwrap(), s);
        }
        assert!("done".parse::<TaskStatus>().is_err());
    }
}
