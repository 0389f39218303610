//! Worker settings a user can set: the variables the worker reads besides those a runtime
//! sets per task ([`super::env`]). They are listed once, in [`SETTINGS`]: the worker reads
//! them by these names, the local runtime passes them through from the orchestrator's
//! environment, the Kubernetes runtime copies the plain ones into every worker pod (secrets
//! come from the cluster Secret), and README's worker-configuration table is checked against
//! this list.

/// `AO_CLAUDE_BIN`: the Claude Code binary.
pub const CLAUDE_BIN: &str = "AO_CLAUDE_BIN";
/// `AO_GITHUB_API_URL`: GitHub REST API base URL.
pub const GITHUB_API_URL: &str = "AO_GITHUB_API_URL";
/// `AO_GITHUB_REPO`: `owner/repo` for pull requests when the clone URL is not a GitHub URL.
pub const GITHUB_REPO: &str = "AO_GITHUB_REPO";
/// `GITHUB_TOKEN`: push and pull-request token.
pub const GITHUB_TOKEN: &str = "GITHUB_TOKEN";
/// `ANTHROPIC_API_KEY`: for Claude Code.
pub const ANTHROPIC_API_KEY: &str = "ANTHROPIC_API_KEY";
/// `ANTHROPIC_BASE_URL`: an Anthropic API gateway or proxy.
pub const ANTHROPIC_BASE_URL: &str = "ANTHROPIC_BASE_URL";
/// `AO_ALLOWED_TOOLS`: Claude Code's `--allowedTools`.
pub const ALLOWED_TOOLS: &str = "AO_ALLOWED_TOOLS";
/// `AO_PERMISSION_MODE`: Claude Code's `--permission-mode` (`none`: no flag).
pub const PERMISSION_MODE: &str = "AO_PERMISSION_MODE";
/// `CLAUDE_CODE_MAX_RETRIES`: Claude Code's API retries.
pub const CLAUDE_MAX_RETRIES: &str = "CLAUDE_CODE_MAX_RETRIES";
/// `AO_GIT_AUTHOR_NAME`: commit author and committer name.
pub const GIT_AUTHOR_NAME: &str = "AO_GIT_AUTHOR_NAME";
/// `AO_GIT_AUTHOR_EMAIL`: commit author and committer email.
pub const GIT_AUTHOR_EMAIL: &str = "AO_GIT_AUTHOR_EMAIL";
/// `AO_LOG_FORMAT`: `json` for JSON logs on stderr.
pub const LOG_FORMAT: &str = "AO_LOG_FORMAT";

/// How a setting reaches a Kubernetes worker pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InKubernetes {
    /// Copied from the orchestrator's environment into every pod, as a plain value.
    Copied,
    /// A `secretKeyRef` to this key of the worker Secret (`--k8s-secret-name`).
    FromSecret,
    /// Set by this `serve` flag instead.
    Flag(&'static str),
    /// Not passed: the worker image decides.
    Image,
}

/// One worker setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub name: &'static str,
    /// What the worker uses when it is unset ("" when nothing).
    pub default: &'static str,
    pub secret: bool,
    pub kubernetes: InKubernetes,
    /// One line for the docs.
    pub help: &'static str,
}

const fn setting(
    name: &'static str,
    default: &'static str,
    secret: bool,
    kubernetes: InKubernetes,
    help: &'static str,
) -> Setting {
    Setting {
        name,
        default,
        secret,
        kubernetes,
        help,
    }
}

use InKubernetes::{Copied, Flag, FromSecret, Image};

/// Every worker setting.
pub const SETTINGS: &[Setting] = &[
    setting(
        ANTHROPIC_API_KEY,
        "",
        true,
        FromSecret,
        "API key for Claude Code",
    ),
    setting(
        ANTHROPIC_BASE_URL,
        "",
        false,
        Flag("--worker-anthropic-base-url"),
        "Anthropic API gateway or proxy for Claude Code",
    ),
    setting(
        GITHUB_TOKEN,
        "",
        true,
        FromSecret,
        "token for cloning, pushing and opening pull requests; never given to the agent",
    ),
    setting(
        GITHUB_API_URL,
        "https://api.github.com",
        false,
        Copied,
        "GitHub REST API base URL (GitHub Enterprise: `https://HOST/api/v3`)",
    ),
    setting(
        GITHUB_REPO,
        "",
        false,
        Copied,
        "`owner/repo` to open pull requests on when the clone URL is not a GitHub URL; without it such tasks end `pushed` with `pr_skipped_reason`",
    ),
    setting(
        ALLOWED_TOOLS,
        "",
        false,
        Copied,
        "tools the agent may use without asking (Claude Code `--allowedTools`, e.g. `Write,Bash(git:*)`)",
    ),
    setting(
        PERMISSION_MODE,
        "acceptEdits",
        false,
        Copied,
        "Claude Code `--permission-mode`; `none` passes no flag",
    ),
    setting(
        CLAUDE_MAX_RETRIES,
        "2",
        false,
        Copied,
        "retries of Claude Code's API calls",
    ),
    setting(
        GIT_AUTHOR_NAME,
        "Agent Orchestrator",
        false,
        Copied,
        "commit author and committer name",
    ),
    setting(
        GIT_AUTHOR_EMAIL,
        "agent@localhost",
        false,
        Copied,
        "commit author and committer email",
    ),
    setting(
        CLAUDE_BIN,
        "claude",
        false,
        Image,
        "the Claude Code binary: a bare name is looked up on `PATH`, then in the pinned install `scripts/install-claude.sh` makes (`.tools/claude`); it must be the pinned version, else tasks end `agent_unavailable`",
    ),
    setting(
        LOG_FORMAT,
        "text",
        false,
        Copied,
        "`json` for JSON log lines on the worker's stderr",
    ),
];

/// The plain settings a Kubernetes worker pod gets from the orchestrator's environment: every
/// [`InKubernetes::Copied`] setting that `get` has a non-empty value for.
pub fn copied_to_pods(get: impl Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    SETTINGS
        .iter()
        .filter(|s| s.kubernetes == Copied)
        .filter_map(|s| {
            get(s.name)
                .filter(|v| !v.is_empty())
                .map(|v| (s.name.to_owned(), v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_secrets_never_copied() {
        let mut names: Vec<&str> = SETTINGS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), SETTINGS.len());
        for s in SETTINGS {
            assert_eq!(s.secret, s.kubernetes == FromSecret, "{}", s.name);
        }
    }

    #[test]
    fn copies_only_plain_settings_that_are_set() {
        let got = copied_to_pods(|k| match k {
            PERMISSION_MODE => Some("bypassPermissions".into()),
            GITHUB_TOKEN | ANTHROPIC_API_KEY => Some("secret".into()),
            CLAUDE_BIN => Some("/bin/claude".into()),
            ALLOWED_TOOLS => Some(String::new()),
            _ => None,
        });
        assert_eq!(
            got,
            [(PERMISSION_MODE.to_owned(), "bypassPermissions".to_owned())]
        );
    }
}
