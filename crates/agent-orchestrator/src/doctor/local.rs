//! The checks of this machine: Claude Code, the Anthropic API settings, git, GitHub, the
//! data directory, the worker user and the callback URL.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ao_core::worker::settings as s;
use ao_worker::claude::{self, Source};

use super::names::*;
use super::{Check, Env, fail, ok, warn};
use crate::config::{RuntimeKind, ServeArgs};

/// How long a probe of another service (GitHub, the callback URL, `git --version`) may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What `AO_CLAUDE_BIN` names (`claude` when unset): the binary the worker will look for.
pub(crate) fn configured_claude(env: &Env) -> PathBuf {
    PathBuf::from(env.get(s::CLAUDE_BIN).unwrap_or("claude"))
}

pub(crate) async fn claude_code(env: &Env) -> Check {
    let path = env.get("PATH").map(std::ffi::OsStr::new);
    match claude::locate(&configured_claude(env), path).await {
        Ok(found) => {
            let from = match found.source {
                Source::Configured => "AO_CLAUDE_BIN",
                Source::Path => "PATH",
                Source::PinnedInstall => "the pinned install",
            };
            ok(
                CLAUDE_CODE,
                format!(
                    "Claude Code {} (pinned) at {}, from {from}",
                    found.version,
                    found.bin.display()
                ),
            )
        }
        Err(e) => fail(CLAUDE_CODE, e.to_string(), e.fix()),
    }
}

pub(crate) fn anthropic_api(env: &Env) -> Check {
    let key = env.get(s::ANTHROPIC_API_KEY).is_some();
    let base = env.get(s::ANTHROPIC_BASE_URL).is_some();
    match (key, base) {
        (true, false) => ok(ANTHROPIC_API, "ANTHROPIC_API_KEY is set"),
        (true, true) => ok(
            ANTHROPIC_API,
            "ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL are set",
        ),
        (false, true) => ok(
            ANTHROPIC_API,
            "ANTHROPIC_BASE_URL is set (a gateway; no ANTHROPIC_API_KEY)",
        ),
        (false, false) => fail(
            ANTHROPIC_API,
            "neither ANTHROPIC_API_KEY nor ANTHROPIC_BASE_URL is set: Claude Code cannot call the API",
            "export ANTHROPIC_API_KEY=<your key> (or ANTHROPIC_BASE_URL for a gateway) before starting the server",
        ),
    }
}

pub(crate) async fn git(env: &Env) -> Check {
    let run = tokio::process::Command::new("git")
        .arg("--version")
        .env_clear()
        .env("PATH", env.get("PATH").unwrap_or_default())
        .kill_on_drop(true)
        .output();
    let fix = "install git (Debian: `apt-get install git`); workers clone, commit and push with it";
    match tokio::time::timeout(PROBE_TIMEOUT, run).await {
        Ok(Ok(out)) if out.status.success() => {
            let v = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            ok(GIT, v)
        }
        Ok(Ok(out)) => fail(
            GIT,
            format!("`git --version` exited with {}", out.status),
            fix,
        ),
        Ok(Err(e)) => fail(GIT, format!("git not found on PATH ({e})"), fix),
        Err(_) => fail(GIT, "`git --version` did not answer", fix),
    }
}

/// `GITHUB_TOKEN` and the API it is for. Warn-level: tasks without a repository, and pushes
/// to other hosts, do not need it.
pub(crate) async fn github(env: &Env) -> Check {
    let api = env
        .get(s::GITHUB_API_URL)
        .unwrap_or("https://api.github.com")
        .trim_end_matches('/');
    let Some(token) = env.get(s::GITHUB_TOKEN) else {
        return warn(
            GITHUB,
            "GITHUB_TOKEN is not set: repository tasks can clone public repositories but not push or open pull requests",
            "export GITHUB_TOKEN=<a token that may push and open pull requests> before starting the server",
        );
    };
    let client = reqwest::Client::builder()
        .user_agent(concat!(
            "agent-orchestrator-doctor/",
            env!("CARGO_PKG_VERSION")
        ))
        .timeout(PROBE_TIMEOUT)
        .build();
    let sent = match client {
        Ok(c) => {
            c.get(format!("{api}/rate_limit"))
                .bearer_auth(token)
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28")
                .send()
                .await
        }
        Err(e) => Err(e),
    };
    match sent {
        Ok(r) if r.status().is_success() => ok(
            GITHUB,
            format!("GITHUB_TOKEN is set and the GitHub API at {api} accepts it"),
        ),
        Ok(r) if r.status() == reqwest::StatusCode::UNAUTHORIZED => warn(
            GITHUB,
            format!("the GitHub API at {api} refuses GITHUB_TOKEN (401)"),
            "make a new token and export it as GITHUB_TOKEN",
        ),
        Ok(r) => warn(
            GITHUB,
            format!("the GitHub API at {api} answered {}", r.status()),
            "check AO_GITHUB_API_URL and the token's access",
        ),
        Err(e) => warn(
            GITHUB,
            format!(
                "the GitHub API at {api} does not answer ({})",
                ao_core::runtime::error_chain(&e)
            ),
            "check the network, or set AO_GITHUB_API_URL (GitHub Enterprise: https://HOST/api/v3)",
        ),
    }
}

/// The data directory holds every task's prompt and results: writable, and no wider than
/// `serve` makes it (0700, 0711 with `--worker-user`).
pub(crate) fn data_dir(args: &ServeArgs) -> Check {
    let dir = &args.data_dir;
    let apart = args.runtime == RuntimeKind::Local && args.worker_user.is_some();
    let want = crate::datadir::mode(apart);
    let shown = dir.display();
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return missing_data_dir(dir, want),
        Err(e) => {
            return fail(
                DATA_DIR,
                format!("cannot read {shown}: {e}"),
                "choose another --data-dir",
            );
        }
    };
    if !meta.is_dir() {
        return fail(
            DATA_DIR,
            format!("{shown} is not a directory"),
            "choose another --data-dir",
        );
    }
    if !writable(dir) {
        return fail(
            DATA_DIR,
            format!("{shown} is not writable by this user"),
            format!(
                "give it to this user (`chown -R $(id -u) {shown}`) or choose another --data-dir"
            ),
        );
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o777 & !want == 0 {
        return ok(
            DATA_DIR,
            format!("{shown} is writable and private (mode {mode:04o})"),
        );
    }
    let ours = meta.uid() == nix::unistd::geteuid().as_raw() && mode & 0o1000 == 0;
    if ours {
        warn(
            DATA_DIR,
            format!("{shown} has mode {mode:04o}; serve makes it {want:04o} at start"),
            format!("chmod {want:o} {shown}"),
        )
    } else {
        fail(
            DATA_DIR,
            format!(
                "{shown} (mode {mode:04o}) is shared or not this user's, so others may read the task store"
            ),
            format!("use a private --data-dir (`mkdir -m {want:o} DIR`)"),
        )
    }
}

fn missing_data_dir(dir: &Path, want: u32) -> Check {
    let parent = dir
        .ancestors()
        .skip(1)
        .find(|p| p.as_os_str().is_empty() || p.exists())
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        });
    match parent {
        Some(p) if writable(p) => ok(
            DATA_DIR,
            format!(
                "{} does not exist yet; serve creates it (mode {want:04o})",
                dir.display()
            ),
        ),
        _ => fail(
            DATA_DIR,
            format!(
                "{} does not exist and cannot be created here",
                dir.display()
            ),
            "choose a --data-dir this user may create",
        ),
    }
}

fn writable(p: &Path) -> bool {
    use nix::unistd::{AccessFlags, access};
    access(p, AccessFlags::W_OK | AccessFlags::X_OK).is_ok()
}

/// `--worker-user`: it exists, is not root, and can reach its task folders and run the
/// worker's programs (`ao_runtime_local::check_worker_user`, which `serve` refuses to start
/// without).
pub(crate) async fn worker_user(args: &ServeArgs, env: &Env) -> Option<Check> {
    let spec = args.worker_user.as_deref()?;
    if args.runtime != RuntimeKind::Local {
        return None;
    }
    let exe = std::env::current_exe().ok();
    let supervisor = args.supervisor_bin.clone().or_else(|| exe.clone());
    let worker = match &args.worker_command {
        Some(cmd) => Some(cmd.clone()).filter(|c| c.is_absolute()),
        None => exe,
    };
    let agent = match super::builtin_agent(args) {
        true => claude::locate(
            &configured_claude(env),
            env.get("PATH").map(std::ffi::OsStr::new),
        )
        .await
        .ok()
        .map(|f| f.bin),
        false => None,
    };
    let programs: Vec<&Path> = [&supervisor, &worker, &agent]
        .into_iter()
        .filter_map(|p| p.as_deref())
        .collect();
    let data_dir = std::path::absolute(&args.data_dir).unwrap_or_else(|_| args.data_dir.clone());
    Some(
        match ao_runtime_local::check_worker_user(spec, &data_dir, &programs) {
            Ok(u) => ok(
                WORKER_USER,
                format!("worker user {} can use its task folders", u.describe()),
            ),
            Err(e) => fail(WORKER_USER, format!("--worker-user {spec}: {e}"), e.fix()),
        },
    )
}

/// The callback URL, when one is configured: it must answer (`/healthz`) from here, which
/// is where local workers call it from. Without one, local workers call the listen address
/// and `serve` checks it once it listens.
pub(crate) async fn callback_url(args: &ServeArgs) -> Check {
    match args
        .callback_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    {
        Some(url) => probe_callback(url).await,
        None if args.runtime == RuntimeKind::Kubernetes => fail(
            CALLBACK_URL,
            "--runtime kubernetes needs --callback-url: the URL worker pods reach this server at",
            "set --callback-url (AO_CALLBACK_URL), e.g. http://agent-orchestrator.agents-control-plane.svc:8080",
        ),
        None => ok(
            CALLBACK_URL,
            format!(
                "local workers call back on the listen address ({}); serve checks it when it listens",
                args.listen
            ),
        ),
    }
}

/// `GET <url>/healthz` must answer 200.
pub(crate) async fn probe_callback(url: &str) -> Check {
    let base = url.trim_end_matches('/');
    let fix = "start the server, and set --callback-url to an address the workers can reach";
    let client = match reqwest::Client::builder().timeout(PROBE_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => return warn(CALLBACK_URL, format!("no HTTP client: {e}"), fix),
    };
    match client.get(format!("{base}/healthz")).send().await {
        Ok(r) if r.status().is_success() => {
            ok(CALLBACK_URL, format!("the callback URL {base} answers"))
        }
        Ok(r) => warn(
            CALLBACK_URL,
            format!(
                "the callback URL {base} answered {} on /healthz",
                r.status()
            ),
            fix,
        ),
        Err(e) => warn(
            CALLBACK_URL,
            format!(
                "the callback URL {base} does not answer ({}); workers could not report back",
                ao_core::runtime::error_chain(&e)
            ),
            fix,
        ),
    }
}
