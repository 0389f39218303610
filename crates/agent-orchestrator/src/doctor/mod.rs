//! The machine checks, in one place for `agent-orchestrator doctor` (a checklist with a fix
//! for each failure, like `flutter doctor`) and for `serve` (one warning per problem at
//! start-up, the details on `/readyz`, and the admission gate that answers 503
//! `agent_unavailable` while the built-in agent can't run).
//!
//! Which checks run follows the configuration, exactly as `serve` would use it:
//! - the built-in agent on the local runtime: Claude Code (found, executable, the pinned
//!   version), an API key or base URL, git, `GITHUB_TOKEN` and the GitHub API;
//! - a custom `--worker-command`: none of those (the worker is the user's own);
//! - always: the data directory (writable and private), `--worker-user` when given, the
//!   callback URL where it can be checked;
//! - `--runtime kubernetes`: the cluster, the namespace and the worker Secret, and the RBAC
//!   verbs of [`ao_runtime_kube::rbac::REQUIRED_ACCESS`] (SelfSubjectAccessReview).
//!
//! A check never prints a secret's value: it says whether a variable is set, and what the
//! service it unlocks answered.

mod gate;
mod kube;
mod local;
mod render;

use std::collections::BTreeMap;
use std::process::ExitCode;

pub use ao_api::{CheckStatus, ReadinessCheck as Check};
pub use gate::ServeReadiness;

use crate::config::{RuntimeKind, ServeArgs};

/// Check names, shared by the checklist, the log lines and `/readyz`.
pub mod names {
    pub const CLAUDE_CODE: &str = "claude_code";
    pub const ANTHROPIC_API: &str = "anthropic_api";
    pub const GIT: &str = "git";
    pub const GITHUB: &str = "github";
    pub const DATA_DIR: &str = "data_dir";
    pub const WORKER_USER: &str = "worker_user";
    pub const CALLBACK_URL: &str = "callback_url";
    pub const KUBERNETES_CLUSTER: &str = "kubernetes_cluster";
    pub const KUBERNETES_SECRET: &str = "kubernetes_secret";
    pub const KUBERNETES_RBAC: &str = "kubernetes_rbac";
}

/// Who asks: `doctor` runs everything; `serve` leaves out what it checks otherwise (its own
/// callback URL is checked once it listens) and never writes to the cluster, not even a
/// dry run (the worker Secret is checked by `doctor`; a pod without it fails as
/// `worker_config_error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Doctor,
    Serve,
}

/// The environment the checks read, taken once (variables set but empty count as unset).
#[derive(Debug, Clone, Default)]
pub struct Env(BTreeMap<String, String>);

impl Env {
    pub fn from_process() -> Self {
        Env(std::env::vars().filter(|(_, v)| !v.is_empty()).collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

impl<const N: usize> From<[(&str, &str); N]> for Env {
    fn from(vars: [(&str, &str); N]) -> Self {
        Env(vars
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect())
    }
}

pub(crate) fn ok(name: &str, message: impl Into<String>) -> Check {
    check(name, CheckStatus::Ok, message, None::<String>)
}

pub(crate) fn warn(name: &str, message: impl Into<String>, fix: impl Into<String>) -> Check {
    check(name, CheckStatus::Warn, message, Some(fix))
}

pub(crate) fn fail(name: &str, message: impl Into<String>, fix: impl Into<String>) -> Check {
    check(name, CheckStatus::Fail, message, Some(fix))
}

fn check(
    name: &str,
    status: CheckStatus,
    message: impl Into<String>,
    fix: Option<impl Into<String>>,
) -> Check {
    Check {
        name: name.to_owned(),
        status,
        message: message.into(),
        fix: fix.map(Into::into),
    }
}

/// Whether workers run the built-in agent on this machine (the Claude checks apply).
pub fn builtin_agent(args: &ServeArgs) -> bool {
    args.runtime == RuntimeKind::Local && args.worker_command.is_none()
}

/// Every check that applies to `args`, in checklist order.
pub async fn run_checks(args: &ServeArgs, env: &Env, purpose: Purpose) -> Vec<Check> {
    let mut out = Vec::new();
    if builtin_agent(args) {
        out.push(local::claude_code(env).await);
        out.push(local::anthropic_api(env));
        out.push(local::git(env).await);
        out.push(local::github(env).await);
    }
    out.push(local::data_dir(args));
    if let Some(c) = local::worker_user(args, env).await {
        out.push(c);
    }
    if args.runtime == RuntimeKind::Kubernetes {
        out.extend(kube::checks(args, purpose).await);
    }
    if purpose == Purpose::Doctor {
        out.push(local::callback_url(args).await);
    }
    out
}

/// True when a failed check stops tasks from running.
pub fn blocking(checks: &[Check]) -> bool {
    checks.iter().any(|c| c.status == CheckStatus::Fail)
}

/// `agent-orchestrator doctor`: print the checklist; exit 1 when a check that blocks tasks
/// failed, 0 otherwise (warnings included).
pub async fn main(args: ServeArgs) -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let checks = run_checks(&args, &Env::from_process(), Purpose::Doctor).await;
    let color = std::io::IsTerminal::is_terminal(&std::io::stdout());
    print!("{}", render::checklist(&args, &checks, color));
    if blocking(&checks) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `serve`'s start-up checks: run them (and, for local workers, probe the callback URL now
/// that it listens), log one warning per problem, and keep them for `/readyz`. A pod's
/// callback URL is a Service that routes to this server only once it is ready, so it cannot
/// be probed from here at start-up.
pub async fn startup(args: ServeArgs, callback: String, readiness: std::sync::Arc<ServeReadiness>) {
    let mut checks = run_checks(&args, &Env::from_process(), Purpose::Serve).await;
    if args.runtime == RuntimeKind::Local {
        checks.push(local::probe_callback(&callback).await);
    }
    log_problems(&checks);
    readiness.set_startup(checks);
}

/// Log one warning per check that is not `ok` (what `serve` does at start-up).
pub fn log_problems(checks: &[Check]) {
    for c in checks.iter().filter(|c| c.status != CheckStatus::Ok) {
        let fix = c.fix.as_deref().unwrap_or_default();
        let what = match c.status {
            CheckStatus::Fail => "start-up check failed",
            _ => "start-up check warns",
        };
        tracing::warn!(check = %c.name, problem = %c.message, fix, "{what}");
    }
}
