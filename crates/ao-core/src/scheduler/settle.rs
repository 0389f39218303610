//! Settling a finished worker: how its exit, the stop the orchestrator asked for and the
//! reported result map to a terminal status and reason. Pure, and tested here.

use crate::lifecycle::{Reason, TaskStatus};
use crate::runtime::ExitInfo;
use crate::task::TaskResult;
use crate::worker::Outcome;

/// Why the orchestrator itself stopped a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    Cancel,
    Deadline,
}

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
        let delivered = r.outcome.is_delivered();
        return if delivered && exit.code == Some(0) {
            (TaskStatus::Succeeded, Reason::Other(r.outcome.to_string()))
        } else if delivered {
            // Delivered, then crashed: the exit code is the better explanation.
            (TaskStatus::Failed, exit_reason(exit))
        } else {
            (TaskStatus::Failed, Reason::Other(r.outcome.to_string()))
        };
    }
    match (exit.code, exit.signal) {
        (Some(0), _) if require_result => (TaskStatus::Failed, Reason::Other("no_result".into())),
        (Some(0), _) => (TaskStatus::Succeeded, Reason::Completed),
        _ => (TaskStatus::Failed, exit_reason(exit)),
    }
}

/// The result to store with a task the orchestrator stopped, so that its outcome agrees with
/// the status: `cancelled` for a cancel, `timed_out` for a deadline (the worker itself only
/// knows it was told to stop). `None` when the stored result is already right, or absent.
pub fn stopped_result(
    stop: Option<StopCause>,
    exit: &ExitInfo,
    result: Option<&TaskResult>,
) -> Option<TaskResult> {
    let outcome = match (stop, &exit.reason) {
        (Some(StopCause::Cancel), _) => Outcome::Cancelled,
        (Some(StopCause::Deadline), _) | (None, Some(Reason::DeadlineExceeded)) => {
            Outcome::TimedOut
        }
        _ => return None,
    };
    let r = result.filter(|r| r.outcome != outcome)?;
    Some(TaskResult {
        outcome,
        ..r.clone()
    })
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

    fn result(outcome: Outcome) -> TaskResult {
        TaskResult::new(outcome)
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
        for o in Outcome::ALL {
            let (s, r) = final_status(None, &code(0), Some(&result(o)), true);
            let want = if o.is_delivered() {
                TaskStatus::Succeeded
            } else {
                TaskStatus::Failed
            };
            assert_eq!((s, r), (want, Reason::Other(o.as_str().into())));
        }
        assert_eq!(
            final_status(None, &code(2), Some(&result(Outcome::PrOpened)), true),
            (TaskStatus::Failed, Reason::ExitCode(2))
        );
        assert_eq!(
            final_status(None, &code(0), None, true),
            (TaskStatus::Failed, Reason::Other("no_result".into()))
        );
    }

    #[test]
    fn a_stopped_task_reports_the_stop_as_its_outcome() {
        let signalled = ExitInfo {
            code: Some(143),
            ..Default::default()
        };
        let stopped = TaskResult {
            error: Some("worker stopped by signal".into()),
            ..result(Outcome::Stopped)
        };
        let r = stopped_result(Some(StopCause::Cancel), &signalled, Some(&stopped)).unwrap();
        assert_eq!(r.outcome, Outcome::Cancelled);
        assert_eq!(r.error, stopped.error, "the rest of the result is kept");
        let r = stopped_result(Some(StopCause::Deadline), &signalled, Some(&stopped)).unwrap();
        assert_eq!(r.outcome, Outcome::TimedOut);
        // Kubernetes' active deadline: the runtime names the reason.
        let dl = ExitInfo {
            reason: Some(Reason::DeadlineExceeded),
            ..Default::default()
        };
        let r = stopped_result(None, &dl, Some(&result(Outcome::AgentError))).unwrap();
        assert_eq!(r.outcome, Outcome::TimedOut);
        // Not stopped by us, no result, or already right: nothing to change.
        assert_eq!(stopped_result(None, &signalled, Some(&stopped)), None);
        assert_eq!(
            stopped_result(Some(StopCause::Cancel), &signalled, None),
            None
        );
        let done = result(Outcome::Cancelled);
        assert_eq!(
            stopped_result(Some(StopCause::Cancel), &signalled, Some(&done)),
            None
        );
    }
}
