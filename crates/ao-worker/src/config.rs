//! What a worker run needs to know, and how it is read from the environment the orchestrator's
//! runtimes set. Kept apart from the run itself so tests can build a [`WorkerConfig`] directly.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ao_core::task::{TaskId, TaskSpec};
use ao_core::worker::settings as s;
use ao_core::worker::{EnvError, WorkerEnv};
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

/// Permission mode used when `AO_PERMISSION_MODE` is unset.
///
/// `acceptEdits`: the agent may create and edit files in its working directory without asking;
/// everything else (Bash, web access, …) must be pre-approved with `AO_ALLOWED_TOOLS` or it is
/// denied (headless runs never prompt), which ends the task as `permission_denied`. This is
/// safe for the local runtime (a process on a developer machine). Sandboxed pods may opt into
/// `AO_PERMISSION_MODE=bypassPermissions`.
pub const DEFAULT_PERMISSION_MODE: &str = "acceptEdits";

/// Where the orchestrator wants events and the result.
#[derive(Debug, Clone)]
pub struct CallbackConfig {
    /// Base URL of the orchestrator API, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// The per-task worker token (bearer).
    pub token: SecretString,
}

/// Everything one worker run needs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub task_id: TaskId,
    pub spec: TaskSpec,
    /// Work directory. A repository is cloned into `<workspace>/repo`, and the agent runs
    /// there; without a repository the agent runs in the workspace itself.
    pub workspace: PathBuf,
    /// `HOME` for Claude Code and git (each run gets its own). `None`: inherit.
    pub home: Option<PathBuf>,
    /// `None`: events only go to stdout, the result is not reported.
    pub callback: Option<CallbackConfig>,
    pub claude_bin: PathBuf,
    /// GitHub REST API base URL (no trailing slash).
    pub github_api_url: String,
    pub github_token: Option<SecretString>,
    /// `owner/repo` for pull requests when the repository URL is not a GitHub URL.
    pub github_repo: Option<String>,
    pub anthropic_api_key: Option<SecretString>,
    pub anthropic_base_url: Option<String>,
    /// Passed as `--allowedTools`.
    pub allowed_tools: Option<String>,
    /// Passed as `--permission-mode`; `None` passes nothing.
    pub permission_mode: Option<String>,
    /// `CLAUDE_CODE_MAX_RETRIES` for Claude Code.
    pub claude_max_retries: u32,
    /// Commit identity.
    pub git_author_name: String,
    pub git_author_email: String,
    /// Extra environment for Claude Code (after the built-in allowlist and `spec.env`).
    pub extra_agent_env: BTreeMap<String, String>,
    /// How long Claude Code gets between SIGTERM and SIGKILL.
    pub stop_grace: Duration,
    /// Total time budget for retrying one callback request.
    pub callback_retry_budget: Duration,
    /// Print every event as a JSON line on stdout (for log collection).
    pub print_events: bool,
    /// Cancelled when the worker must stop (SIGTERM/SIGINT in [`crate::run_from_env`]).
    pub stop: CancellationToken,
}

impl WorkerConfig {
    /// A config with defaults for everything but the task; environment is not read.
    pub fn new(task_id: TaskId, spec: TaskSpec, workspace: PathBuf) -> Self {
        WorkerConfig {
            task_id,
            spec,
            workspace,
            home: None,
            callback: None,
            claude_bin: PathBuf::from("claude"),
            github_api_url: "https://api.github.com".into(),
            github_token: None,
            github_repo: None,
            anthropic_api_key: None,
            anthropic_base_url: None,
            allowed_tools: None,
            permission_mode: Some(DEFAULT_PERMISSION_MODE.into()),
            claude_max_retries: 2,
            git_author_name: "Agent Orchestrator".into(),
            git_author_email: "agent@localhost".into(),
            extra_agent_env: BTreeMap::new(),
            stop_grace: Duration::from_secs(3),
            callback_retry_budget: Duration::from_secs(60),
            print_events: true,
            stop: CancellationToken::new(),
        }
    }

    /// Reads the configuration from the process environment (see the crate docs for the list).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`WorkerConfig::from_env`], with an explicit lookup (for tests). The per-task part
    /// is the contract ([`WorkerEnv`]); the rest are the user's worker settings
    /// ([`ao_core::worker::settings`]). Empty values count as unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| get(k).filter(|v| !v.is_empty());
        let contract = WorkerEnv::from_env(get)?;
        let spec = contract.spec()?;
        let workspace = match contract.workspace {
            Some(w) => w,
            None => std::env::current_dir().map_err(ConfigError::Cwd)?,
        };
        let mut cfg = WorkerConfig::new(contract.task_id, spec, workspace);
        cfg.home = contract.home;
        cfg.callback = contract.callback.map(|c| CallbackConfig {
            url: c.url,
            token: c.token,
        });
        if let Some(b) = get(s::CLAUDE_BIN) {
            cfg.claude_bin = PathBuf::from(b);
        }
        if let Some(u) = get(s::GITHUB_API_URL) {
            cfg.github_api_url = u.trim_end_matches('/').to_owned();
        }
        cfg.github_token = get(s::GITHUB_TOKEN).map(SecretString::from);
        cfg.github_repo = get(s::GITHUB_REPO);
        cfg.anthropic_api_key = get(s::ANTHROPIC_API_KEY).map(SecretString::from);
        cfg.anthropic_base_url = get(s::ANTHROPIC_BASE_URL);
        cfg.allowed_tools = get(s::ALLOWED_TOOLS);
        cfg.permission_mode = match get(s::PERMISSION_MODE).as_deref() {
            None => Some(DEFAULT_PERMISSION_MODE.into()),
            Some("none") => None,
            Some(m) => Some(m.to_owned()),
        };
        if let Some(r) = get(s::CLAUDE_MAX_RETRIES) {
            cfg.claude_max_retries = r
                .parse()
                .map_err(|_| ConfigError::Invalid(s::CLAUDE_MAX_RETRIES))?;
        }
        if let Some(n) = get(s::GIT_AUTHOR_NAME) {
            cfg.git_author_name = n;
        }
        if let Some(e) = get(s::GIT_AUTHOR_EMAIL) {
            cfg.git_author_email = e;
        }
        Ok(cfg)
    }
}

/// Why the environment does not describe a runnable task. Never contains values.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error("invalid value in {0}")]
    Invalid(&'static str),
    #[error("cannot determine the current directory")]
    Cwd(#[source] std::io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        move |k| m.get(k).cloned()
    }

    const SPEC: &str = r#"{"prompt":"hi","timeout_seconds":60}"#;
    const ID: &str = "01890000-0000-7000-8000-000000000001";

    #[test]
    fn reads_inline_spec_and_defaults() {
        let cfg = WorkerConfig::from_lookup(env(&[
            ("AO_TASK_ID", ID),
            ("AO_TASK_SPEC", SPEC),
            ("AO_WORKSPACE", "/w"),
        ]))
        .unwrap();
        assert_eq!(cfg.spec.prompt, "hi");
        assert_eq!(cfg.workspace, PathBuf::from("/w"));
        assert!(cfg.callback.is_none());
        assert_eq!(
            cfg.permission_mode.as_deref(),
            Some(DEFAULT_PERMISSION_MODE)
        );
        assert_eq!(cfg.claude_bin, PathBuf::from("claude"));
        assert_eq!(cfg.claude_max_retries, 2);
    }

    #[test]
    fn reads_task_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("task.json");
        std::fs::write(&path, SPEC).unwrap();
        let p = path.to_str().unwrap();
        let cfg = WorkerConfig::from_lookup(env(&[
            ("AO_TASK_ID", ID),
            ("AO_TASK_FILE", p),
            ("AO_WORKSPACE", "/w"),
            ("AO_CALLBACK_URL", "http://h:1/"),
            ("AO_CALLBACK_TOKEN", "t"),
        ]))
        .unwrap();
        assert_eq!(cfg.spec.timeout_seconds, 60);
        assert_eq!(cfg.callback.unwrap().url, "http://h:1");
    }

    #[test]
    fn permission_mode_none_passes_nothing() {
        let cfg = WorkerConfig::from_lookup(env(&[
            ("AO_TASK_ID", ID),
            ("AO_TASK_SPEC", SPEC),
            ("AO_WORKSPACE", "/w"),
            ("AO_PERMISSION_MODE", "none"),
        ]))
        .unwrap();
        assert_eq!(cfg.permission_mode, None);
    }

    #[test]
    fn errors_name_the_variable_not_the_value() {
        let e = WorkerConfig::from_lookup(env(&[
            ("AO_TASK_ID", "nope-secret"),
            ("AO_TASK_SPEC", SPEC),
        ]))
        .unwrap_err();
        assert!(!e.to_string().contains("nope-secret"));
        let e = WorkerConfig::from_lookup(env(&[("AO_TASK_ID", ID)])).unwrap_err();
        assert!(e.to_string().contains("AO_TASK_FILE"));
        let e = WorkerConfig::from_lookup(env(&[
            ("AO_TASK_ID", ID),
            ("AO_TASK_SPEC", SPEC),
            ("AO_CALLBACK_URL", "http://x"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("AO_CALLBACK_TOKEN"));
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let cfg = WorkerConfig::from_lookup(env(&[
            ("AO_TASK_ID", ID),
            ("AO_TASK_SPEC", SPEC),
            ("AO_WORKSPACE", "/w"),
        ]))
        .unwrap();
        let used = |name: &str| -> String {
            match name {
                s::GITHUB_API_URL => cfg.github_api_url.clone(),
                s::PERMISSION_MODE => cfg.permission_mode.clone().unwrap_or_default(),
                s::CLAUDE_MAX_RETRIES => cfg.claude_max_retries.to_string(),
                s::GIT_AUTHOR_NAME => cfg.git_author_name.clone(),
                s::GIT_AUTHOR_EMAIL => cfg.git_author_email.clone(),
                s::CLAUDE_BIN => cfg.claude_bin.display().to_string(),
                s::LOG_FORMAT => "text".into(),
                _ => String::new(),
            }
        };
        for setting in s::SETTINGS {
            assert_eq!(used(setting.name), setting.default, "{}", setting.name);
        }
    }

    #[test]
    fn settings_are_read_by_their_names() {
        let cfg = WorkerConfig::from_lookup(env(&[
            ("AO_TASK_ID", ID),
            ("AO_TASK_SPEC", SPEC),
            ("AO_WORKSPACE", "/w"),
            ("AO_GITHUB_API_URL", "https://ghe.example/api/v3/"),
            ("AO_GITHUB_REPO", "o/r"),
            ("AO_ALLOWED_TOOLS", "Write"),
            ("AO_PERMISSION_MODE", "plan"),
            ("CLAUDE_CODE_MAX_RETRIES", "5"),
            ("AO_GIT_AUTHOR_NAME", "Bot"),
            ("AO_GIT_AUTHOR_EMAIL", "bot@example.com"),
            ("AO_CLAUDE_BIN", "/opt/claude"),
            ("ANTHROPIC_BASE_URL", "http://gw"),
        ]))
        .unwrap();
        assert_eq!(cfg.github_api_url, "https://ghe.example/api/v3");
        assert_eq!(cfg.github_repo.as_deref(), Some("o/r"));
        assert_eq!(cfg.allowed_tools.as_deref(), Some("Write"));
        assert_eq!(cfg.permission_mode.as_deref(), Some("plan"));
        assert_eq!(cfg.claude_max_retries, 5);
        assert_eq!(
            (cfg.git_author_name.as_str(), cfg.git_author_email.as_str()),
            ("Bot", "bot@example.com")
        );
        assert_eq!(cfg.claude_bin, PathBuf::from("/opt/claude"));
        assert_eq!(cfg.anthropic_base_url.as_deref(), Some("http://gw"));
    }
}
