//! Deciding the task outcome from what the agent run produced, before any delivery. The
//! orchestrator maps outcomes to task statuses (`ao_core::scheduler::outcome`); this module is
//! the single place that decides which one a run gets.

use crate::agent::{AgentRun, EndedBy};

/// The outcome reported in `TaskResult::outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    PrOpened,
    Pushed,
    NoChanges,
    Answered,
    AgentError,
    PermissionDenied,
    DeliveryFailed,
    BudgetExceeded,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::PrOpened => "pr_opened",
            Outcome::Pushed => "pushed",
            Outcome::NoChanges => "no_changes",
            Outcome::Answered => "answered",
            Outcome::AgentError => "agent_error",
            Outcome::PermissionDenied => "permission_denied",
            Outcome::DeliveryFailed => "delivery_failed",
            Outcome::BudgetExceeded => "budget_exceeded",
        }
    }

    /// A delivered result: `pr_opened`, `pushed`, `answered`.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            Outcome::PrOpened | Outcome::Pushed | Outcome::Answered
        )
    }

    /// The worker's exit code: 0 for a delivered result, 1 otherwise.
    pub fn exit_code(self) -> u8 {
        if self.is_success() { 0 } else { 1 }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verdict on the agent run: `Ok(())` if its work may be delivered, else the failure
/// outcome and a short error. Order matters: stop, budget, missing result, errors, denials.
pub fn judge(run: &AgentRun, budget: Option<f64>) -> Result<(), (Outcome, String)> {
    let cost = run.tracker.cost();
    let result = run.tracker.result.as_ref();
    if run.ended_by == EndedBy::Stopped {
        return Err((Outcome::AgentError, "worker stopped by signal".into()));
    }
    let over = budget.is_some_and(|b| cost > b);
    let budget_subtype = result.is_some_and(|r| r.subtype.contains("budget"));
    if run.ended_by == EndedBy::Budget || over || budget_subtype {
        let b = budget
            .map(|b| format!(" max_budget_usd {b}"))
            .unwrap_or_default();
        return Err((
            Outcome::BudgetExceeded,
            format!("cost ${cost:.4} exceeded{b}"),
        ));
    }
    let code = run.status.and_then(|s| s.code());
    let Some(r) = result else {
        let code = code.map_or_else(|| "a signal".to_owned(), |c| format!("code {c}"));
        let tail = run
            .stderr_tail
            .as_deref()
            .map(|t| format!(": {}", crate::truncate(t, 200)))
            .unwrap_or_default();
        return Err((
            Outcome::AgentError,
            format!("claude exited with {code} without a result{tail}"),
        ));
    };
    if r.is_error || r.subtype != "success" {
        let text = crate::truncate(r.text.as_deref().unwrap_or(""), 300);
        return Err((
            Outcome::AgentError,
            format!("agent run failed ({}): {text}", r.subtype),
        ));
    }
    if code != Some(0) {
        return Err((
            Outcome::AgentError,
            format!("claude exited with {code:?} after a successful result"),
        ));
    }
    if !r.permission_denials.is_empty() {
        let mut tools = r.permission_denials.clone();
        tools.dedup();
        return Err((
            Outcome::PermissionDenied,
            format!("permission denied for: {}", tools.join(", ")),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::{RunResult, RunTracker};
    use std::os::unix::process::ExitStatusExt;

    fn run(code: i32, result: Option<RunResult>, ended_by: EndedBy) -> AgentRun {
        let mut tracker = RunTracker::default();
        tracker.result = result;
        AgentRun {
            tracker,
            status: Some(std::process::ExitStatus::from_raw(code << 8)),
            ended_by,
            stderr_tail: None,
        }
    }

    fn ok() -> RunResult {
        RunResult {
            subtype: "success".into(),
            text: Some("done".into()),
            ..Default::default()
        }
    }

    #[test]
    fn outcomes() {
        assert!(judge(&run(0, Some(ok()), EndedBy::Exit), None).is_ok());
        let o = |r: Result<(), (Outcome, String)>| r.unwrap_err().0;
        assert_eq!(
            o(judge(&run(1, None, EndedBy::Exit), None)),
            Outcome::AgentError
        );
        assert_eq!(
            o(judge(
                &run(
                    1,
                    Some(RunResult {
                        is_error: true,
                        ..ok()
                    }),
                    EndedBy::Exit
                ),
                None
            )),
            Outcome::AgentError
        );
        assert_eq!(
            o(judge(
                &run(
                    0,
                    Some(RunResult {
                        subtype: "error_max_turns".into(),
                        ..ok()
                    }),
                    EndedBy::Exit
                ),
                None
            )),
            Outcome::AgentError
        );
        assert_eq!(
            o(judge(&run(1, Some(ok()), EndedBy::Exit), None)),
            Outcome::AgentError
        );
        let denied = RunResult {
            permission_denials: vec!["Bash".into()],
            ..ok()
        };
        assert_eq!(
            o(judge(&run(0, Some(denied), EndedBy::Exit), None)),
            Outcome::PermissionDenied
        );
        assert_eq!(
            o(judge(&run(143, None, EndedBy::Budget), Some(1.0))),
            Outcome::BudgetExceeded
        );
        let pricey = RunResult {
            total_cost_usd: Some(2.0),
            ..ok()
        };
        assert_eq!(
            o(judge(&run(0, Some(pricey), EndedBy::Exit), Some(1.0))),
            Outcome::BudgetExceeded
        );
        let own = RunResult {
            subtype: "error_max_budget_usd".into(),
            is_error: true,
            ..ok()
        };
        assert_eq!(
            o(judge(&run(1, Some(own), EndedBy::Exit), Some(1.0))),
            Outcome::BudgetExceeded
        );
        assert_eq!(
            o(judge(&run(0, Some(ok()), EndedBy::Stopped), None)),
            Outcome::AgentError
        );
    }

    #[test]
    fn exit_codes() {
        for o in [Outcome::PrOpened, Outcome::Pushed, Outcome::Answered] {
            assert_eq!(o.exit_code(), 0);
        }
        for o in [
            Outcome::NoChanges,
            Outcome::AgentError,
            Outcome::PermissionDenied,
            Outcome::DeliveryFailed,
            Outcome::BudgetExceeded,
        ] {
            assert_eq!(o.exit_code(), 1);
        }
    }
}
