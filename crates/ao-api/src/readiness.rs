//! What the machine lets this server do, as the API needs it: whether the built-in agent can
//! run a task now (submissions get 503 `agent_unavailable` while it can't, so tasks don't
//! queue only to fail), and the start-up checks `/readyz` shows.
//!
//! The checks themselves (Claude Code, the API key, git, GitHub, the data dir, Kubernetes) live
//! in the binary's `doctor` module, which knows the configuration; this crate only sees them
//! through [`Readiness`].

use serde::Serialize;
use utoipa::ToSchema;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Ok,
    /// Some tasks may fail (say, repository tasks without `GITHUB_TOKEN`); others run.
    Warn,
    /// Tasks cannot run as configured.
    Fail,
}

/// One check, as `/readyz` shows it. Never carries a secret's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReadinessCheck {
    /// Stable name, e.g. `claude_code`, `anthropic_api`, `github`, `data_dir`.
    pub name: String,
    pub status: CheckStatus,
    /// What was found, for people.
    pub message: String,
    /// How to fix it, when it is not `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The server's view of the machine.
#[async_trait::async_trait]
pub trait Readiness: Send + Sync {
    /// Why the built-in agent cannot run a task right now, with the fix; `None` when it can.
    /// Asked on every submission, so it must be cheap (a cached answer, a `stat`); it is
    /// asked again each time, so installing the agent opens submissions without a restart.
    async fn agent_unavailable(&self) -> Option<String>;

    /// The checks as they stand: the start-up ones (empty until they have run), with the
    /// agent's re-checked.
    async fn checks(&self) -> Vec<ReadinessCheck>;
}

/// Nothing checked, everything admitted: for tests and embedders with their own workers.
#[derive(Debug, Default, Clone, Copy)]
pub struct AlwaysReady;

#[async_trait::async_trait]
impl Readiness for AlwaysReady {
    async fn agent_unavailable(&self) -> Option<String> {
        None
    }

    async fn checks(&self) -> Vec<ReadinessCheck> {
        Vec::new()
    }
}
