//! The Claude Code worker (issue 3): runs one task inside a worker (a local process or a
//! Kubernetes pod), from workspace to delivered result.
//!
//! Steps: clone the repository (if any) into `<AO_WORKSPACE>/repo` on branch
//! `agent/<task-id>`; run Claude Code headless there (or in the workspace itself for a
//! question-only task); stream its events to stdout and to the orchestrator; enforce
//! `max_budget_usd`; commit, push and open a pull request; report a
//! [`ao_core::task::TaskResult`].
//!
//! # Environment ([`run_from_env`])
//!
//! The per-task variables a runtime sets (`AO_TASK_ID`, `AO_TASK_FILE`/`AO_TASK_SPEC`,
//! `AO_WORKSPACE`, `HOME`, `AO_CALLBACK_URL`, `AO_CALLBACK_TOKEN`) are the contract
//! [`ao_core::worker::WorkerEnv`]; the settings a user may give every worker
//! (`AO_ALLOWED_TOOLS`, `AO_PERMISSION_MODE`, `AO_GITHUB_REPO`, `GITHUB_TOKEN`, …) are listed,
//! with their defaults, in [`ao_core::worker::settings::SETTINGS`] and in README's
//! "Worker configuration" table. Unset and empty values are the same.
//!
//! Exit code: 0 for `pr_opened`/`pushed`/`answered`, 1 for other outcomes and for a
//! configuration error, 128+signal (143 for SIGTERM, 130 for SIGINT) when stopped by a signal
//! (the reported outcome is then `stopped`; the orchestrator records `cancelled` or
//! `timed_out` when it was the one that stopped the worker).

mod agent;
mod callback;
pub mod claude;
mod config;
pub mod cost;
mod deliver;
mod events;
mod git;
pub mod github;
mod logging;
mod outcome;
mod run;
mod scrub;
pub mod stream;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};

pub use ao_core::worker::Outcome;
pub use config::{CallbackConfig, ConfigError, DEFAULT_PERMISSION_MODE, WorkerConfig};
pub use run::{RunReport, run};
pub use tokio_util::sync::CancellationToken;

/// Entry point for `agent-orchestrator worker`: reads [`WorkerConfig`] from the environment,
/// installs SIGTERM/SIGINT handling (stop Claude Code, flush, report), runs the task.
pub async fn run_from_env() -> anyhow::Result<ExitCode> {
    run_from_env_code().await.map(ExitCode::from)
}

/// [`run_from_env`] with the exit code as a number (for callers that need to inspect it).
pub async fn run_from_env_code() -> anyhow::Result<u8> {
    logging::init();
    let cfg = match WorkerConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "invalid worker configuration");
            return Ok(1);
        }
    };
    let signal = Arc::new(AtomicI32::new(0));
    let watcher = tokio::spawn(watch_signals(cfg.stop.clone(), signal.clone()));
    let report = run(cfg).await;
    watcher.abort();
    let report = report?;
    let sig = signal.load(Ordering::SeqCst);
    if report.stopped && sig != 0 {
        return Ok(u8::try_from(128 + sig).unwrap_or(1));
    }
    Ok(report.exit_code())
}

async fn watch_signals(stop: CancellationToken, which: Arc<AtomicI32>) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let sig = tokio::select! {
        _ = term.recv() => 15,
        _ = int.recv() => 2,
    };
    tracing::info!(signal = sig, "signal received, stopping");
    which.store(sig, Ordering::SeqCst);
    stop.cancel();
    Ok(())
}

/// The HTTP client for callbacks and GitHub (rustls with the ring provider).
pub(crate) fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!(
            "agent-orchestrator-worker/",
            env!("CARGO_PKG_VERSION")
        ))
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .expect("HTTP client configuration is static")
}

/// At most `max` characters of `s` (on a char boundary), with `…` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}
