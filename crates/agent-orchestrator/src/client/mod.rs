//! `agent-orchestrator tasks ...`: a client for the task API, in the manner of `kubectl`, `gh`
//! and `argo`. Tables for people, `-o json` for scripts, live progress while waiting, and a
//! distinct exit code for each kind of failure (see [`ExitKind`]).

/// `println!` that ignores a closed pipe (`tasks list | head`) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod api;
mod follow;
mod render;
mod sse;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

pub use api::{ClientError, ExitKind};

/// Where the server is and how to authenticate.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Orchestrator base URL.
    #[arg(
        long,
        env = "AO_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// API bearer token.
    #[arg(long, env = "AO_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct TasksArgs {
    #[command(flatten)]
    pub conn: Connection,
    #[command(subcommand)]
    pub command: TasksCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Wide,
    Json,
    /// Only the ID of each task, one a line (for scripts: `ID=$(… -o id)`).
    Id,
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Submit a task. The prompt is an argument, `-f FILE`, or `-` for standard input.
    Submit(SubmitArgs),
    /// List tasks, newest first.
    List {
        /// Only tasks in this status.
        #[arg(long)]
        status: Option<String>,
        /// Only tasks with this label (`key=value`; repeat for several).
        #[arg(long = "label", short = 'l')]
        labels: Vec<String>,
        /// At most this many tasks.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Show one task.
    Get {
        id: String,
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Print a task's worker output.
    Logs {
        id: String,
        /// Keep streaming until the task ends.
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Print a task's agent events, readably.
    Events {
        id: String,
        /// Keep streaming until the task ends.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Raw JSON lines instead of the readable form.
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
        output: Output,
    },
    /// Cancel a queued or running task.
    Cancel { id: String },
    /// Wait for a task to end; exits 0 only if it succeeded.
    Wait { id: String },
}

#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The prompt, or `-` to read it from standard input.
    #[arg(conflicts_with = "file", required_unless_present = "file")]
    pub prompt: Option<String>,
    /// Read the prompt from this file.
    #[arg(short = 'f', long)]
    pub file: Option<PathBuf>,
    /// Repository URL to work in.
    #[arg(long)]
    pub repo: Option<String>,
    /// Branch, tag or commit to start from.
    #[arg(long = "ref", requires = "repo")]
    pub git_ref: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long)]
    pub max_turns: Option<u32>,
    /// Spending limit in US dollars.
    #[arg(long)]
    pub budget: Option<f64>,
    /// Time limit, e.g. `90s`, `30m`, `2h`.
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<u64>,
    /// Label `key=value` (repeatable).
    #[arg(long = "label", short = 'l')]
    pub labels: Vec<String>,
    /// Non-secret environment variable `NAME=value` for the worker (repeatable).
    #[arg(long = "env", short = 'e')]
    pub env: Vec<String>,
    /// Makes the submission safe to repeat.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Wait for the task to end, showing progress; exit 0 only if it succeeded.
    #[arg(short = 'w', long)]
    pub wait: bool,
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// `90`, `90s`, `30m`, `2h`, `1d` → seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86_400),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 90s, 30m or 2h"))?;
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("`{s}` is out of range"))
}

fn pairs(items: &[String], what: &str) -> Result<serde_json::Map<String, Value>, ClientError> {
    let mut map = serde_json::Map::new();
    for item in items {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| ClientError::usage(format!("{what} `{item}` must be KEY=VALUE")))?;
        map.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(map)
}

fn read_prompt(args: &SubmitArgs) -> Result<String, ClientError> {
    let text = match (&args.prompt, &args.file) {
        (_, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| ClientError::usage(format!("cannot read {}: {e}", path.display())))?,
        (Some(p), None) if p == "-" => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| ClientError::usage(format!("cannot read standard input: {e}")))?;
            s
        }
        (Some(p), None) => p.clone(),
        (None, None) => return Err(ClientError::usage("a prompt is required".into())),
    };
    Ok(text)
}

fn submit_body(args: &SubmitArgs) -> Result<Value, ClientError> {
    let mut body = json!({ "prompt": read_prompt(args)? });
    let o = body.as_object_mut().expect("object");
    if let Some(url) = &args.repo {
        o.insert(
            "repository".into(),
            json!({"url": url, "ref": args.git_ref}),
        );
    }
    let opt = |v: Option<Value>| v.unwrap_or(Value::Null);
    o.insert("model".into(), opt(args.model.clone().map(Value::from)));
    o.insert("max_turns".into(), opt(args.max_turns.map(Value::from)));
    o.insert("max_budget_usd".into(), opt(args.budget.map(Value::from)));
    o.insert("timeout_seconds".into(), opt(args.timeout.map(Value::from)));
    o.insert(
        "labels".into(),
        Value::Object(pairs(&args.labels, "label")?),
    );
    o.insert("env".into(), Value::Object(pairs(&args.env, "env")?));
    o.retain(|_, v| !v.is_null());
    Ok(body)
}

/// Run a `tasks` subcommand and turn the outcome into the process exit code.
pub async fn main(args: TasksArgs) -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.kind.code()
        }
    }
}

async fn run(args: TasksArgs) -> Result<ExitCode, ClientError> {
    let api = api::Api::new(&args.conn)?;
    match args.command {
        TasksCommand::Submit(s) => {
            let body = submit_body(&s)?;
            let task = api.submit(&body, s.idempotency_key.as_deref()).await?;
            let id = task["id"].as_str().unwrap_or_default().to_string();
            if !s.wait {
                render::print_task(&task, s.output);
                return Ok(ExitCode::SUCCESS);
            }
            if !matches!(s.output, Output::Json | Output::Id) {
                eprintln!("task {id} submitted");
            }
            follow::wait(&api, &id, s.output).await
        }
        TasksCommand::List {
            status,
            labels,
            limit,
            output,
        } => {
            // `--label nokv` is a usage error (exit 2) here too, as for `submit`.
            pairs(&labels, "label")?;
            let tasks = api.list(status.as_deref(), &labels, limit).await?;
            render::print_list(&tasks, output);
            Ok(ExitCode::SUCCESS)
        }
        TasksCommand::Get { id, output } => {
            render::print_task(&api.get(&id).await?, output);
            Ok(ExitCode::SUCCESS)
        }
        TasksCommand::Logs { id, follow } => {
            api.logs(&id, follow).await?;
            Ok(ExitCode::SUCCESS)
        }
        TasksCommand::Events { id, follow, output } => {
            follow::events(&api, &id, follow, output == Output::Json).await?;
            Ok(ExitCode::SUCCESS)
        }
        TasksCommand::Cancel { id } => {
            let task = api.cancel(&id).await?;
            let state = if task["status"] == "cancelled" {
                "cancelled"
            } else {
                "cancelling"
            };
            out!("task {id} {state}");
            Ok(ExitCode::SUCCESS)
        }
        TasksCommand::Wait { id } => follow::wait(&api, &id, Output::Table).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
