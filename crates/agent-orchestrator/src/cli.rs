//! The command line: `serve` (the orchestrator), `doctor` (checks the machine for `serve`),
//! `tasks` (the client), `worker` (inside a worker), and the hidden
//! `supervise` (inside a local worker's process group).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::ServeArgs;
use crate::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "agent-orchestrator",
    version,
    about = "Run autonomous coding agents as ephemeral, isolated workers"
)]
pub struct Cli {
    /// Log format: `structured` (JSON lines; alias `json`) or `plain` (alias `text`).
    #[arg(long, env = "AO_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain, global = true, ignore_case = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API server and the scheduler.
    #[command(args_override_self = true)]
    Serve(Box<ServeArgs>),
    /// Check this machine for `serve` with the same options: a checklist with a fix for each
    /// problem; exits 1 when a problem stops tasks from running.
    #[command(args_override_self = true)]
    Doctor(Box<ServeArgs>),
    /// Run the Claude Code worker for one task (inside a worker process or pod).
    Worker,
    /// Submit, list, inspect, follow and cancel tasks on a running orchestrator.
    Tasks(Box<crate::client::TasksArgs>),
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Supervise a local worker process (used by the local runtime).
    #[command(hide = true)]
    Supervise(SuperviseArgs),
}

#[derive(Debug, clap::Args)]
pub struct SuperviseArgs {
    /// The task's folder.
    #[arg(long)]
    pub dir: PathBuf,
    /// The worker command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

impl Cli {
    /// Parse the command line, filling options not given on it or in the environment from
    /// the TOML file named by `--config` / `AO_CONFIG`.
    pub fn parse_with_config_file() -> Self {
        match crate::config::parse_cli(std::env::args_os()) {
            Ok(cli) => cli,
            Err(crate::config::CliError::Usage(e)) => e.exit(),
            Err(crate::config::CliError::Config(e)) => {
                let detail = ao_core::runtime::error_chain(&e);
                eprintln!("agent-orchestrator: {detail}");
                std::process::exit(2);
            }
        }
    }
}
