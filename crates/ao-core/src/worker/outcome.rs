//! What became of an agent run, as the worker reports it in [`TaskResult::outcome`]
//! (`crate::task::TaskResult`). One closed set, shared by the worker that decides it, the API
//! that accepts it and the scheduler that settles the task's status from it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The outcome of an agent run. Serialized in `snake_case` (`pr_opened`, `budget_exceeded`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The work was committed, pushed and a pull request opened (`pr_url`).
    PrOpened,
    /// The work was committed and pushed, but no pull request was opened:
    /// `pr_skipped_reason` says why.
    Pushed,
    /// The agent made no change to the repository.
    NoChanges,
    /// A task without a repository: the agent's answer is the `summary`.
    Answered,
    /// The agent run failed (API error, crash, turn limit, …): see `error`.
    AgentError,
    /// The agent could not be started at all: its binary is missing, not executable or not
    /// the pinned version. A configuration problem of the machine, not the agent's failure;
    /// `error` says what to fix (`agent-orchestrator doctor` checks the same).
    AgentUnavailable,
    /// The agent tried a tool it was not allowed to use.
    PermissionDenied,
    /// The repository could not be cloned, or its `ref` not checked out.
    CloneFailed,
    /// Committing, pushing or opening the pull request failed.
    DeliveryFailed,
    /// The run cost more than `max_budget_usd`.
    BudgetExceeded,
    /// The worker was told to stop (SIGTERM/SIGINT) before it finished, by something other
    /// than the orchestrator's cancel or deadline (those end as `cancelled`/`timed_out`).
    Stopped,
    /// The orchestrator stopped the worker because the task was cancelled.
    Cancelled,
    /// The orchestrator stopped the worker because the task's deadline passed.
    TimedOut,
}

impl Outcome {
    /// Every outcome, in documentation order.
    pub const ALL: [Outcome; 13] = [
        Outcome::PrOpened,
        Outcome::Pushed,
        Outcome::NoChanges,
        Outcome::Answered,
        Outcome::AgentError,
        Outcome::AgentUnavailable,
        Outcome::PermissionDenied,
        Outcome::CloneFailed,
        Outcome::DeliveryFailed,
        Outcome::BudgetExceeded,
        Outcome::Stopped,
        Outcome::Cancelled,
        Outcome::TimedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::PrOpened => "pr_opened",
            Outcome::Pushed => "pushed",
            Outcome::NoChanges => "no_changes",
            Outcome::Answered => "answered",
            Outcome::AgentError => "agent_error",
            Outcome::AgentUnavailable => "agent_unavailable",
            Outcome::PermissionDenied => "permission_denied",
            Outcome::CloneFailed => "clone_failed",
            Outcome::DeliveryFailed => "delivery_failed",
            Outcome::BudgetExceeded => "budget_exceeded",
            Outcome::Stopped => "stopped",
            Outcome::Cancelled => "cancelled",
            Outcome::TimedOut => "timed_out",
        }
    }

    /// A delivered result (`pr_opened`, `pushed`, `answered`): the task succeeded.
    pub fn is_delivered(self) -> bool {
        matches!(
            self,
            Outcome::PrOpened | Outcome::Pushed | Outcome::Answered
        )
    }

    /// The worker's exit code for this outcome: 0 when delivered, 1 otherwise.
    pub fn exit_code(self) -> u8 {
        if self.is_delivered() { 0 } else { 1 }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not one of the outcomes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown outcome `{0}`")]
pub struct UnknownOutcome(pub String);

impl FromStr for Outcome {
    type Err = UnknownOutcome;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| UnknownOutcome(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_are_the_strings() {
        for o in Outcome::ALL {
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(json, format!("\"{}\"", o.as_str()));
            assert_eq!(serde_json::from_str::<Outcome>(&json).unwrap(), o);
            assert_eq!(o.as_str().parse::<Outcome>().unwrap(), o);
        }
        assert!("success".parse::<Outcome>().is_err());
        assert!(serde_json::from_str::<Outcome>("\"PrOpened\"").is_err());
    }

    #[test]
    fn delivered_outcomes_exit_zero() {
        let delivered: Vec<Outcome> = Outcome::ALL
            .into_iter()
            .filter(|o| o.is_delivered())
            .collect();
        assert_eq!(
            delivered,
            [Outcome::PrOpened, Outcome::Pushed, Outcome::Answered]
        );
        for o in Outcome::ALL {
            assert_eq!(o.exit_code(), u8::from(!o.is_delivered()));
        }
    }
}
