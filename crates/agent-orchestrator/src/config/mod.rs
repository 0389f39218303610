//! The server's one typed configuration. Every option is a flag with an `AO_` environment
//! variable; an optional TOML file (`--config`) supplies defaults for options given neither on
//! the command line nor in the environment. Precedence: flag > environment > file > default.
//!
//! The file is merged into the parser, not into argv: its values replace the built-in
//! defaults of `serve`'s arguments and the command line is parsed once more, by clap, with
//! the same value parsers. Nothing looks for a `serve` word in argv, so `tasks submit serve`
//! stays a task whose prompt is "serve". Combinations a runtime cannot honour are refused at
//! start-up ([`ServeArgs::check_runtime_flags`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

mod file;

pub use file::{CliError, ConfigError, parse_cli};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// Workers are local processes (the embedded default).
    Local,
    /// Workers are Pods in a Kubernetes cluster.
    Kubernetes,
}

/// Options of `agent-orchestrator serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TOML file with defaults for the options below (keys are the long option names, e.g.
    /// `max-concurrency = 8`).
    #[arg(long, env = "AO_CONFIG")]
    pub config: Option<PathBuf>,

    /// Address to listen on. Without API tokens only loopback addresses are allowed.
    #[arg(long, env = "AO_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Directory for the database and the local workers' folders.
    #[arg(long, env = "AO_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Database URL; defaults to `sqlite://<data-dir>/orchestrator.db`. `postgres://…` keeps
    /// the tasks in PostgreSQL, where several replicas may share them (one leads the
    /// scheduler). A URL with a password belongs in the variable, not on the command line.
    #[arg(long, env = "AO_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// With PostgreSQL: seconds a scheduler lease lasts. The leader renews it every fifth of
    /// that and steps down when it could not renew for four fifths; a replica that died is
    /// replaced within about 1.2 times this (12 s by default).
    #[arg(long, env = "AO_LEADER_LEASE_SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(2..=300))]
    pub leader_lease_seconds: u64,

    /// Comma-separated API bearer tokens. Required to listen beyond loopback.
    #[arg(
        long,
        env = "AO_API_TOKENS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub api_tokens: Vec<String>,

    /// File with API bearer tokens, one per line (`#` starts a comment).
    #[arg(long, env = "AO_API_TOKENS_FILE")]
    pub api_tokens_file: Option<PathBuf>,

    /// Workers that may run at once.
    #[arg(long, env = "AO_MAX_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_concurrency: u32,

    /// Worker launches one scheduler step keeps in flight at once, so a slow or throttled
    /// launch (a Kubernetes API round trip) holds one slot while the others go on.
    #[arg(long, env = "AO_LAUNCH_CONCURRENCY", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub launch_concurrency: u32,

    /// Seconds a task's launches may keep being refused (the API server throttles or is
    /// unreachable) before the task fails with `launch_failed`. Each refused task backs off
    /// on its own meanwhile (1 s doubling to 4 s, jittered) and lets the tasks behind it go first.
    #[arg(long, env = "AO_LAUNCH_DEADLINE", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub launch_deadline: u64,

    /// Seconds a shutdown waits for the launches in flight (none begins after SIGTERM);
    /// launches still in flight then are adopted or requeued by the next start.
    #[arg(long, env = "AO_SHUTDOWN_GRACE", default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub shutdown_grace: u64,

    /// Queued tasks beyond which submissions are refused with 429.
    #[arg(long, env = "AO_MAX_QUEUED", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_queued: u32,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "AO_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,

    /// Timeout of a task that does not set `timeout_seconds`, in seconds.
    #[arg(long, env = "AO_DEFAULT_TIMEOUT", default_value_t = 3600)]
    pub default_timeout: u64,

    /// Largest `timeout_seconds` a task may ask for.
    #[arg(long, env = "AO_MAX_TIMEOUT", default_value_t = 86_400)]
    pub max_timeout: u64,

    /// Seconds between SIGTERM and SIGKILL when stopping a worker.
    #[arg(long, env = "AO_STOP_GRACE", default_value_t = 10)]
    pub stop_grace: u64,

    /// Seconds a finished worker's files (or pod) are kept before cleanup. With
    /// `--runtime kubernetes`, `--k8s-pod-ttl-seconds` overrides it when given.
    #[arg(long, env = "AO_WORKER_RETENTION", default_value_t = 3600)]
    pub worker_retention: u64,

    /// Where workers run.
    #[arg(long, env = "AO_RUNTIME", value_enum, default_value_t = RuntimeKind::Local, ignore_case = true)]
    pub runtime: RuntimeKind,

    /// Worker program for the local runtime. Defaults to this binary's `worker` subcommand.
    #[arg(long, env = "AO_WORKER_COMMAND")]
    pub worker_command: Option<PathBuf>,

    /// Arguments for `--worker-command` (repeat the flag, or comma-separate in the variable).
    #[arg(
        long = "worker-arg",
        env = "AO_WORKER_ARGS",
        value_delimiter = ',',
        allow_hyphen_values = true
    )]
    pub worker_args: Vec<String>,

    /// Extra environment variable names passed from the orchestrator to local workers, on top
    /// of the built-in list (PATH, locale, ANTHROPIC_*, GITHUB_TOKEN, ...).
    #[arg(long, env = "AO_WORKER_PASS_ENV", value_delimiter = ',')]
    pub worker_pass_env: Vec<String>,

    /// Run local workers as this user (name or numeric uid, optionally `:group`; not root).
    /// Strongly advised when the orchestrator runs as root. The user must be able to reach the
    /// data directory and run this binary and Claude Code; `serve` checks that at start.
    #[arg(long, env = "AO_WORKER_USER")]
    pub worker_user: Option<String>,

    /// URL workers use to reach this server's callback routes. With the local runtime it
    /// defaults to the listen address (loopback when listening on all interfaces); with
    /// `--runtime kubernetes` it is required (pods cannot reach that address).
    #[arg(long, env = "AO_CALLBACK_URL")]
    pub callback_url: Option<String>,

    /// Require workers to report a result; a clean exit without one fails the task. Defaults to
    /// on for the built-in agent worker and with `--runtime kubernetes` (pods run the agent
    /// worker, whatever `--worker-command` says), off for a local custom `--worker-command`.
    /// An explicit `true` or `false` applies to either runtime.
    #[arg(long, env = "AO_REQUIRE_RESULT")]
    pub require_result: Option<bool>,

    /// Binary providing the `supervise` subcommand (defaults to this executable).
    #[arg(long, env = "AO_SUPERVISOR_BIN", hide = true)]
    pub supervisor_bin: Option<PathBuf>,

    #[command(flatten)]
    pub http: crate::http_server::HttpArgs,

    #[command(
        flatten,
        next_help_heading = "Kubernetes runtime (--runtime kubernetes)"
    )]
    pub kube: ao_runtime_kube::KubeArgs,
}

/// A start-up combination of flags that the chosen runtime cannot honour.
#[derive(Debug, thiserror::Error)]
pub enum FlagError {
    #[error(
        "--runtime kubernetes needs --callback-url (AO_CALLBACK_URL): the URL worker pods use to reach this server"
    )]
    KubeNeedsCallbackUrl,
}

impl ServeArgs {
    /// Refuse flags whose help would not be true for the chosen runtime.
    pub fn check_runtime_flags(&self) -> Result<(), FlagError> {
        if self.runtime != RuntimeKind::Kubernetes {
            return Ok(());
        }
        if self
            .callback_url
            .as_deref()
            .is_none_or(|u| u.trim().is_empty())
        {
            return Err(FlagError::KubeNeedsCallbackUrl);
        }
        Ok(())
    }

    /// Whether a clean exit without a result fails the task (see `--require-result`).
    pub fn require_result(&self) -> bool {
        let agent_worker = self.runtime == RuntimeKind::Kubernetes || self.worker_command.is_none();
        self.require_result.unwrap_or(agent_worker)
    }

    /// How long finished workers are kept: `--k8s-pod-ttl-seconds` for pods when given,
    /// else `--worker-retention`.
    pub fn worker_retention(&self) -> std::time::Duration {
        let secs = match self.runtime {
            RuntimeKind::Kubernetes => self.kube.pod_ttl_seconds.unwrap_or(self.worker_retention),
            RuntimeKind::Local => self.worker_retention,
        };
        std::time::Duration::from_secs(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Command;

    fn serve(argv: &[&str]) -> ServeArgs {
        match parse_cli(argv).unwrap().command {
            Command::Serve(s) => *s,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        <crate::cli::Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn kubernetes_refuses_flags_it_cannot_honour() {
        let kube = ["ao", "serve", "--runtime", "kubernetes"];
        let err = serve(&kube).check_runtime_flags().unwrap_err();
        assert!(matches!(err, FlagError::KubeNeedsCallbackUrl), "{err}");
        let with_cb = [&kube[..], &["--callback-url", "http://ao.agents.svc:8080"]].concat();
        assert!(serve(&with_cb).check_runtime_flags().is_ok());
        assert!(serve(&["ao", "serve"]).check_runtime_flags().is_ok());
    }

    #[test]
    fn require_result_defaults_as_its_help_says() {
        let kube = ["ao", "serve", "--runtime", "kubernetes"];
        assert!(serve(&kube).require_result(), "on for pods");
        assert!(
            serve(&["ao", "serve"]).require_result(),
            "on for the agent worker"
        );
        let custom = ["ao", "serve", "--worker-command", "/bin/true"];
        assert!(
            !serve(&custom).require_result(),
            "off for a custom local worker"
        );
        let off = [&kube[..], &["--require-result", "false"]].concat();
        assert!(!serve(&off).require_result(), "an explicit false applies");
    }

    #[test]
    fn worker_retention_applies_to_pods_unless_the_pod_ttl_is_given() {
        let kube = [
            "ao",
            "serve",
            "--runtime",
            "kubernetes",
            "--worker-retention",
            "60",
        ];
        assert_eq!(serve(&kube).worker_retention().as_secs(), 60);
        let ttl = [&kube[..], &["--k8s-pod-ttl-seconds", "5"]].concat();
        assert_eq!(serve(&ttl).worker_retention().as_secs(), 5);
        let local = [
            "ao",
            "serve",
            "--worker-retention",
            "60",
            "--k8s-pod-ttl-seconds",
            "5",
        ];
        assert_eq!(serve(&local).worker_retention().as_secs(), 60);
    }
}
