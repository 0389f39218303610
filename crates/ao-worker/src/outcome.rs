//! Deciding the agent's [`Outcome`] from what its run produced, before any delivery. The
//! orchestrator settles the task's status from it (`ao_core::scheduler::final_status`); this
//! module is the single place that decides which outcome a run gets, and words its error
//! for a person.

use ao_core::worker::Outcome;

use crate::agent::{AgentRun, EndedBy};
use crate::stream::RunResult;

/// The error of a stopped run (SIGTERM/SIGINT to the worker).
pub const STOPPED: &str = "the worker was told to stop before the agent finished";

/// The verdict on the agent run: `Ok(())` if its work may be delivered, else the failure
/// outcome and a short error. Order matters: stop, budget, missing result, errors, denials.
pub fn judge(run: &AgentRun, budget: Option<f64>) -> Result<(), (Outcome, String)> {
    let cost = run.tracker.account().cost_usd;
    let result = run.tracker.result.as_ref();
    if run.ended_by == EndedBy::Stopped {
        return Err((Outcome::Stopped, STOPPED.into()));
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
            format!("Claude Code exited with {code} without a result{tail}"),
        ));
    };
    if r.is_error || r.subtype != "success" {
        return Err((Outcome::AgentError, agent_failure(r)));
    }
    if let Some(c) = code.filter(|c| *c != 0) {
        return Err((
            Outcome::AgentError,
            format!("Claude Code exited with code {c} after reporting success"),
        ));
    }
    if code.is_none() {
        return Err((
            Outcome::AgentError,
            "Claude Code was killed by a signal after reporting success".into(),
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

/// A failed run, in words: Claude Code's result subtype (`success`, `error_max_turns`, …) is
/// an API detail, so it is translated, and the agent's own text follows.
fn agent_failure(r: &RunResult) -> String {
    let what = match r.subtype.as_str() {
        "error_max_turns" => "the agent reached its turn limit (max_turns)",
        _ => "the agent stopped with an error",
    };
    let text = crate::truncate(r.text.as_deref().unwrap_or("").trim(), 300);
    if text.is_empty() {
        what.to_owned()
    } else {
        format!("{what}: {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::RunTracker;
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
            usage: Some(crate::cost::TokenUsage {
                output_tokens: 10,
                ..Default::default()
            }),
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
            Outcome::Stopped
        );
    }

    #[test]
    fn errors_are_worded_for_a_person() {
        let err = |r: RunResult| judge(&run(1, Some(r), EndedBy::Exit), None).unwrap_err().1;
        let too_long = RunResult {
            is_error: true,
            text: Some("Prompt is too long".into()),
            ..ok()
        };
        assert_eq!(
            err(too_long),
            "the agent stopped with an error: Prompt is too long"
        );
        let turns = RunResult {
            subtype: "error_max_turns".into(),
            text: None,
            ..ok()
        };
        assert_eq!(err(turns), "the agent reached its turn limit (max_turns)");
        let e = judge(&run(2, Some(ok()), EndedBy::Exit), None)
            .unwrap_err()
            .1;
        assert_eq!(e, "Claude Code exited with code 2 after reporting success");
        let e = judge(&run(0, Some(ok()), EndedBy::Stopped), None).unwrap_err();
        assert_eq!(e, (Outcome::Stopped, STOPPED.to_owned()));
    }
}
