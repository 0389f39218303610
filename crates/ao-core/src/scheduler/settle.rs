//! Settling a finished worker: how its exit, the stop the orchestrator asked for and the
//! reported result map to a terminal status and reason. Pure, and tested here.

use crate::lifecycle::{Reason, TaskStatus};
use crate::runtime::ExitInfo;
use crate::task::TaskResult;

/// Why the orchestrator itself stopped a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    Cancel,
    Deadline,
}

/// Agent outcomes that count as a delivered result.
pub const SUCCESS_OUTCOMES: &[&str] = &["pr_opened", "pushed", "answered"];

/// Decide the terminal status of a task whose worker ended.
///
/// `require_result` is set when the worker is the agent worker: then a clean exit without a
/// reported result is a failure (no silent success).
pub fn final_status(
    stop: Option<StopCause>,
    exit: &ExitInfo,
    result: Option<&TaskResult>,
    require_result: bool,
) -> (TaskStatus, Reason) {
    match stop {
        Some(StopCause::Cancel) => return (TaskStatus::Cancelled, Reason::CancelledByUser),
        Some(StopCause::Deadline) => return (TaskStatus::TimedOut, Reason::DeadlineExceeded),
        None => {}
    }
    match &exit.reason {
        Some(Reason::DeadlineExceeded) => return (TaskStatus::TimedOut, Reason::DeadlineExceeded),
        Some(r) => return (TaskStatus::Failed, r.clone()),
        None => {}
    }
    if let Some(r) = result {
        let delivered = SUCCESS_OUTCOMES.contains(&r.outcome.as_str());
        return if delivered && exit.code == Some(0) {
            (TaskStatus::Succeeded, Reason::Other(r.outcome.clone()))
        } else if delivered {
            // Delivered, then crashed: the exit code is the better explanation.
            (TaskStatus::Failed, exit_reason(exit))
        } else {
            (TaskStatus::Failed, Reason::Other(r.outcome.clone()))
        };
    }
    match (exit.code, exit.signal) {
        (Some(0), _) if require_result => (TaskStatus::Failed, Reason::Other("no_result".into())),
        (Some(0), _) => (TaskStatus::Succeeded, Reason::Completed),
        _ => (TaskStatus::Failed, exit_reason(exit)),
    }
}

fn exit_reason(exit: &ExitInfo) -> Reason {
    match (exit.code, exit.signal) {
        (Some(c), _) if c != 0 => Reason::ExitCode(c),
        (_, Some(s)) => Reason::Signal(s),
        (Some(_), None) => Reason::Completed,
        (None, None) => Reason::WorkerLost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(c: i32) -> ExitInfo {
        ExitInfo {
            code: Some(c),
            ..Default::default()
        }
    }

    fn result(outcome: &str) -> TaskResult {
        TaskResult {
            outcome: outcome.into(),
            ..Default::default()
        }
    }

    #[test]
    fn stop_cause_wins() {
        let (s, r) = final_status(Some(StopCause::Cancel), &code(0), None, false);
        assert_eq!((s, r), (TaskStatus::Cancelled, Reason::CancelledByUser));
        let (s, r) = final_status(Some(StopCause::Deadline), &code(143), None, false);
        assert_eq!((s, r), (TaskStatus::TimedOut, Reason::DeadlineExceeded));
    }

    #[test]
    fn plain_exit_codes() {
        assert_eq!(
            final_status(None, &code(0), None, false),
            (TaskStatus::Succeeded, Reason::Completed)
        );
        assert_eq!(
            final_status(None, &code(3), None, false),
            (TaskStatus::Failed, Reason::ExitCode(3))
        );
        let sig = ExitInfo {
            signal: Some(9),
            ..Default::default()
        };
        assert_eq!(
            final_status(None, &sig, None, false),
            (TaskStatus::Failed, Reason::Signal(9))
        );
        assert_eq!(
            final_status(None, &ExitInfo::default(), None, false),
            (TaskStatus::Failed, Reason::WorkerLost)
        );
    }

    #[test]
    fn runtime_reason_overrides() {
        let oom = ExitInfo {
            code: Some(137),
            reason: Some(Reason::Other("oom_killed".into())),
            ..Default::default()
        };
        assert_eq!(
            final_status(None, &oom, None, false),
            (TaskStatus::Failed, Reason::Other("oom_killed".into()))
        );
        let dl = ExitInfo {
            reason: Some(Reason::DeadlineExceeded),
            ..Default::default()
        };
        assert_eq!(final_status(None, &dl, None, false).0, TaskStatus::TimedOut);
    }

    #[test]
    fn agent_results_decide() {
        for ok in SUCCESS_OUTCOMES {
            assert_eq!(
                final_status(None, &code(0), Some(&result(ok)), true).0,
                TaskStatus::Succeeded
            );
        }
        for bad in [
            "no_changes",
            "agent_error",
            "permission_denied",
            "delivery_failed",
            "budget_exceeded",
        ] {
            let (s, r) = final_status(None, &code(0), Some(&result(bad)), true);
            assert_eq!((s, r), (TaskStatus::Failed, Reason::Other(bad.into())));
        }
        assert_eq!(
            final_status(None, &code(2), Some(&result("pr_opened")), true),
            (TaskStatus::Failed, Reason::ExitCode(2))
        );
        assert_eq!(
            final_status(None, &code(0), None, true),
            (TaskStatus::Failed, Reason::Other("no_result".into()))
        );
    }
}
