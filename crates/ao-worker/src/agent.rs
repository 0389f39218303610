//! Running Claude Code headless: argv and environment, its own process group, live parsing of
//! its stream-json output, budget enforcement, and stopping it (SIGTERM, then SIGKILL) when the
//! budget is exceeded or the worker is told to stop.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use futures::StreamExt;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use secrecy::ExposeSecret;
use serde_json::json;
use tokio::io::AsyncRead;
use tokio::process::Command;
use tokio::time::{Instant, sleep_until};
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, FramedRead};

use crate::config::WorkerConfig;
use crate::events::EventSink;
use crate::scrub::Scrubber;
use crate::stream::{RunTracker, parse_line};

/// Longest stdout line kept (tool results can be large); longer lines are dropped.
const MAX_LINE: usize = 8 * 1024 * 1024;
/// stderr forwarding bounds.
const MAX_STDERR_LINES: usize = 200;
const MAX_STDERR_LINE_CHARS: usize = 2_000;

/// Variables Claude Code may inherit from the worker. `ANTHROPIC_*` and `CLAUDE_CODE_*` pass
/// too; `GITHUB_TOKEN` and the callback token never do.
const PASS_ENV: &[&str] = &[
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "USER",
    "SHELL",
    "TERM",
    "IS_SANDBOX",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "API_TIMEOUT_MS",
    "GIT_CONFIG_NOSYSTEM",
];
const PASS_PREFIXES: &[&str] = &["ANTHROPIC_", "CLAUDE_CODE_"];

/// Why the agent process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    /// It exited on its own.
    Exit,
    /// The worker stopped it: the running cost passed `max_budget_usd`.
    Budget,
    /// The worker stopped it because the worker was told to stop.
    Stopped,
}

/// What happened in the agent run.
#[derive(Debug)]
pub struct AgentRun {
    pub tracker: RunTracker,
    pub status: Option<ExitStatus>,
    pub ended_by: EndedBy,
    /// Last stderr line (scrubbed, bounded), for error messages.
    pub stderr_tail: Option<String>,
}

/// Claude Code could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot start Claude Code ({bin}): {source}")]
pub struct SpawnError {
    bin: String,
    source: std::io::Error,
}

impl SpawnError {
    /// The binary vanished or lost its execute bit since it was checked: the agent is
    /// unavailable, it did not fail.
    pub fn is_unavailable(&self) -> bool {
        use std::io::ErrorKind::{NotFound, PermissionDenied};
        matches!(self.source.kind(), NotFound | PermissionDenied)
    }
}

/// The argv after the binary.
pub fn claude_args(cfg: &WorkerConfig) -> Vec<String> {
    let mut a: Vec<String> = vec!["-p".into(), cfg.spec.prompt.clone()];
    a.extend(["--output-format", "stream-json", "--verbose"].map(String::from));
    if let Some(m) = &cfg.spec.model {
        a.extend(["--model".into(), m.clone()]);
    }
    if let Some(n) = cfg.spec.max_turns {
        a.extend(["--max-turns".into(), n.to_string()]);
    }
    if let Some(t) = &cfg.allowed_tools {
        a.extend(["--allowedTools".into(), t.clone()]);
    }
    if let Some(b) = cfg.spec.max_budget_usd {
        a.extend(["--max-budget-usd".into(), b.to_string()]);
    }
    if let Some(m) = &cfg.permission_mode {
        a.extend(["--permission-mode".into(), m.clone()]);
    }
    a
}

fn command(cfg: &WorkerConfig, bin: &Path, cwd: &Path) -> Command {
    let mut c = Command::new(bin);
    c.args(claude_args(cfg)).current_dir(cwd).env_clear();
    for (k, v) in std::env::vars_os() {
        let Some(name) = k.to_str() else { continue };
        if PASS_ENV.contains(&name) || PASS_PREFIXES.iter().any(|p| name.starts_with(p)) {
            c.env(&k, v);
        }
    }
    for (k, v) in &cfg.spec.env {
        if !k.starts_with("AO_") && !k.starts_with("GIT_CONFIG") && k != "GITHUB_TOKEN" {
            c.env(k, v);
        }
    }
    match (&cfg.home, std::env::var_os("HOME")) {
        (Some(h), _) => c.env("HOME", h),
        (None, Some(h)) => c.env("HOME", h),
        (None, None) => &mut c,
    };
    if let Some(k) = &cfg.anthropic_api_key {
        c.env("ANTHROPIC_API_KEY", k.expose_secret());
    }
    if let Some(u) = &cfg.anthropic_base_url {
        c.env("ANTHROPIC_BASE_URL", u);
    }
    c.env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env(
            "CLAUDE_CODE_MAX_RETRIES",
            cfg.claude_max_retries.to_string(),
        )
        .env("GIT_AUTHOR_NAME", &cfg.git_author_name)
        .env("GIT_AUTHOR_EMAIL", &cfg.git_author_email)
        .env("GIT_COMMITTER_NAME", &cfg.git_author_name)
        .env("GIT_COMMITTER_EMAIL", &cfg.git_author_email)
        .env("GIT_TERMINAL_PROMPT", "0")
        .envs(&cfg.extra_agent_env);
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Claude stays in the worker's process group: the local runtime stops a worker by
        // signalling its whole group, and a separate group would let Claude outlive a
        // SIGKILL of the worker.
        .kill_on_drop(true);
    c
}

fn signal_group(pid: Option<u32>, sig: Signal) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // ESRCH (already gone) is fine.
        let _ = kill(Pid::from_raw(pid), sig);
    }
}

/// Runs Claude Code (`bin`, as [`crate::claude::locate`] found it) in `cwd` until it exits (or
/// is stopped), forwarding every event.
pub async fn run(
    cfg: &WorkerConfig,
    bin: &Path,
    cwd: &Path,
    sink: &EventSink,
    scrub: &Scrubber,
) -> Result<AgentRun, SpawnError> {
    let mut child = command(cfg, bin, cwd)
        .spawn()
        .map_err(|source| SpawnError {
            bin: bin.display().to_string(),
            source,
        })?;
    let pgid = child.id();
    tracing::info!(pid = pgid, "claude started");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let stderr_task = tokio::spawn(forward_stderr(stderr, sink.clone(), scrub.clone()));
    let mut lines = FramedRead::new(
        stdout,
        AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), vec![], MAX_LINE),
    );

    let mut tracker = RunTracker::default();
    let mut ended_by = EndedBy::Exit;
    // Deadlines for the stop sequence; `None` until a stop begins.
    let far = Instant::now() + Duration::from_secs(86_400);
    let (mut kill_at, mut give_up_at): (Option<Instant>, Option<Instant>) = (None, None);
    // Set when Claude Code outlived its grace period and had to be killed.
    let mut escalated = false;
    loop {
        tokio::select! {
            frame = lines.next() => match frame {
                None => break,
                Some(Ok(bytes)) => {
                    let line = scrub.scrub(String::from_utf8_lossy(&bytes).trim_end_matches('\r'));
                    if line.trim().is_empty() {
                        continue;
                    }
                    let ev = parse_line(&line);
                    tracker.observe(&ev);
                    sink.emit(ev);
                    let cost = tracker.account().cost_usd;
                    let over = cfg.spec.max_budget_usd.is_some_and(|b| cost > b);
                    if over && ended_by == EndedBy::Exit {
                        tracing::warn!(cost_usd = cost, budget_usd = cfg.spec.max_budget_usd, "budget exceeded, stopping claude");
                        ended_by = EndedBy::Budget;
                        signal_group(pgid, Signal::SIGTERM);
                        kill_at = Some(Instant::now() + cfg.stop_grace);
                    }
                }
                Some(Err(AnyDelimiterCodecError::MaxChunkLengthExceeded)) => {
                    sink.emit(json!({"type": "worker_log", "stream": "stdout", "line": "[line longer than 8 MiB dropped]"}));
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "reading claude output failed");
                    break;
                }
            },
            _ = cfg.stop.cancelled(), if ended_by == EndedBy::Exit => {
                tracing::info!("stop requested, terminating claude");
                ended_by = EndedBy::Stopped;
                signal_group(pgid, Signal::SIGTERM);
                kill_at = Some(Instant::now() + cfg.stop_grace);
            }
            _ = sleep_until(kill_at.unwrap_or(far)), if kill_at.is_some() => {
                escalated = true;
                signal_group(pgid, Signal::SIGKILL);
                kill_at = None;
                give_up_at = Some(Instant::now() + Duration::from_secs(1));
            }
            _ = sleep_until(give_up_at.unwrap_or(far)), if give_up_at.is_some() => break,
        }
    }
    let status =
        match tokio::time::timeout(cfg.stop_grace + Duration::from_secs(2), child.wait()).await {
            Ok(Ok(s)) => Some(s),
            _ => {
                escalated = true;
                signal_group(pgid, Signal::SIGKILL);
                let _ = child.start_kill();
                tokio::time::timeout(Duration::from_secs(2), child.wait())
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
        };
    // Anything left in the group (tool subprocesses) goes with it.
    signal_group(pgid, Signal::SIGKILL);
    let stderr_tail = match tokio::time::timeout(Duration::from_secs(1), stderr_task).await {
        Ok(Ok(tail)) => tail,
        _ => None,
    };
    tracing::info!(
        task_id = %cfg.task_id,
        code = status.and_then(|s| s.code()),
        signal = status.and_then(|s| s.signal()),
        reaped = status.is_some(),
        sigkill = escalated,
        ?ended_by,
        "claude ended"
    );
    Ok(AgentRun {
        tracker,
        status,
        ended_by,
        stderr_tail,
    })
}

/// Forwards stderr lines as `worker_log` events, bounded; returns the last line.
async fn forward_stderr(
    stderr: impl AsyncRead + Unpin,
    sink: EventSink,
    scrub: Scrubber,
) -> Option<String> {
    let mut lines = FramedRead::new(
        stderr,
        AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), vec![], 64 * 1024),
    );
    let (mut sent, mut dropped, mut tail) = (0usize, 0usize, None);
    while let Some(frame) = lines.next().await {
        let Ok(bytes) = frame else { continue };
        let line = scrub.scrub(String::from_utf8_lossy(&bytes).trim_end());
        if line.is_empty() {
            continue;
        }
        let line = crate::truncate(&line, MAX_STDERR_LINE_CHARS);
        if sent < MAX_STDERR_LINES {
            sink.emit(json!({"type": "worker_log", "stream": "stderr", "line": line}));
            sent += 1;
        } else {
            dropped += 1;
        }
        tail = Some(line);
    }
    if dropped > 0 {
        sink.emit(json!({"type": "worker_log", "stream": "stderr", "line": format!("[{dropped} more stderr lines dropped]")}));
    }
    tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use ao_core::task::{TaskId, TaskSpec};

    #[test]
    fn argv_carries_prompt_as_one_element_and_options() {
        let spec: TaskSpec = serde_json::from_str(
            r#"{"prompt":"fix it; rm -rf / \"now\"","timeout_seconds":5,"model":"m","max_turns":3,"max_budget_usd":1.5}"#,
        )
        .unwrap();
        let mut cfg = WorkerConfig::new(TaskId::new(), spec, "/w".into());
        cfg.allowed_tools = Some("Read,Bash(ls:*)".into());
        let a = claude_args(&cfg);
        assert_eq!(
            a[..2],
            ["-p".to_owned(), "fix it; rm -rf / \"now\"".to_owned()]
        );
        let s = a.join(" ");
        for want in [
            "--output-format stream-json --verbose",
            "--model m",
            "--max-turns 3",
            "--allowedTools Read,Bash(ls:*)",
            "--max-budget-usd 1.5",
            "--permission-mode acceptEdits",
        ] {
            assert!(s.contains(want), "{want} missing in {s}");
        }
        cfg.permission_mode = None;
        assert!(!claude_args(&cfg).contains(&"--permission-mode".to_owned()));
    }
}
