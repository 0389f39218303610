//! The server's one typed configuration. Every option is a flag with an `AO_` environment
//! variable; an optional TOML file (`--config`) supplies defaults for options given neither on
//! the command line nor in the environment. Precedence: flag > environment > file > default.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, CommandFactory, ValueEnum};

use crate::cli::Cli;

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

    /// Database URL; defaults to `sqlite://<data-dir>/orchestrator.db`.
    #[arg(long, env = "AO_DATABASE_URL")]
    pub database_url: Option<String>,

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

    /// Seconds a finished worker's files (or pod) are kept before cleanup.
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

    /// Run local workers as this user (name or numeric uid, optionally `:group`). Strongly
    /// advised when the orchestrator runs as root.
    #[arg(long, env = "AO_WORKER_USER")]
    pub worker_user: Option<String>,

    /// URL workers use to reach this server's callback routes. Defaults to the listen
    /// address (loopback when listening on all interfaces).
    #[arg(long, env = "AO_CALLBACK_URL")]
    pub callback_url: Option<String>,

    /// Require workers to report a result; a clean exit without one fails the task. Defaults to
    /// on for the built-in agent worker and off for a custom `--worker-command`.
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

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("config file {path}: unknown key `{key}` (keys are the long option names of `serve`)")]
    UnknownKey { path: PathBuf, key: String },
    #[error("config file {path}: key `{key}` has an unsupported value type")]
    BadValue { path: PathBuf, key: String },
}

/// Insert `--key=value` for every file setting not already given as a flag or in the
/// environment, right after the `serve` subcommand.
pub fn with_file_defaults(mut argv: Vec<String>) -> Result<Vec<String>, ConfigError> {
    let Some(serve_at) = argv.iter().position(|a| a == "serve") else {
        return Ok(argv);
    };
    let path = config_path(&argv[serve_at + 1..])
        .or_else(|| std::env::var_os("AO_CONFIG").map(PathBuf::from));
    let Some(path) = path else { return Ok(argv) };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let table: toml::Table = text.parse().map_err(|source| ConfigError::Parse {
        path: path.clone(),
        source,
    })?;
    let cmd = Cli::command();
    let serve = cmd.find_subcommand("serve").expect("serve subcommand");
    let mut extra = Vec::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let arg = serve
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && long != "config")
            .ok_or_else(|| ConfigError::UnknownKey {
                path: path.clone(),
                key: key.clone(),
            })?;
        let on_cli = argv[serve_at + 1..]
            .iter()
            .any(|a| a == &format!("--{long}") || a.starts_with(&format!("--{long}=")));
        let in_env = arg.get_env().is_some_and(|e| std::env::var_os(e).is_some());
        if on_cli || in_env {
            continue;
        }
        let values = match value {
            toml::Value::Array(items) => items.into_iter().map(scalar).collect::<Option<Vec<_>>>(),
            v => scalar(v).map(|s| vec![s]),
        }
        .ok_or_else(|| ConfigError::BadValue {
            path: path.clone(),
            key: key.clone(),
        })?;
        for v in values {
            extra.push(format!("--{long}={v}"));
        }
    }
    argv.splice(serve_at + 1..serve_at + 1, extra);
    Ok(argv)
}

fn config_path(args: &[String]) -> Option<PathBuf> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--config" {
            return it.next().map(PathBuf::from);
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some(PathBuf::from(p));
        }
    }
    None
}

fn scalar(v: toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn file_fills_what_flags_do_not_give() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "max-concurrency = 7\nmax_queued = 9\nworker-arg = [\"a\", \"b\"]\n",
        )
        .unwrap();
        let out = with_file_defaults(argv(&[
            "ao",
            "serve",
            "--config",
            f.to_str().unwrap(),
            "--max-queued",
            "3",
        ]))
        .unwrap();
        assert!(out.contains(&"--max-concurrency=7".to_string()));
        assert!(!out.iter().any(|a| a == "--max-queued=9"));
        assert!(
            out.contains(&"--worker-arg=a".to_string())
                && out.contains(&"--worker-arg=b".to_string())
        );
        let cli = <Cli as clap::Parser>::try_parse_from(out).unwrap();
        let crate::cli::Command::Serve(s) = cli.command else {
            panic!()
        };
        assert_eq!((s.max_concurrency, s.max_queued), (7, 3));
        assert_eq!(s.worker_args, vec!["a", "b"]);
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "max-concurency = 7\n").unwrap();
        let err = with_file_defaults(argv(&["ao", "serve", "--config", f.to_str().unwrap()]))
            .unwrap_err();
        assert!(err.to_string().contains("max-concurency"), "{err}");
    }
}
