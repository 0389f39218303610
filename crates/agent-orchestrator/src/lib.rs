//! The library half of the `agent-orchestrator` binary: configuration, startup of the server
//! with its store, runtime and scheduler, and the small subcommands that run inside workers.
//! Tests build the server from here with a listener on port 0.

pub mod cli;
pub mod client;
pub mod config;
pub mod datadir;
pub mod doctor;
pub mod http_server;
pub mod serve;
pub mod store;
pub mod telemetry;

use std::process::ExitCode;

/// `agent-orchestrator supervise`: runs inside a local worker's process group.
pub async fn supervise_main(args: cli::SuperviseArgs) -> ExitCode {
    match ao_runtime_local::supervise(&args.dir, &args.command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("agent-orchestrator supervise: {e}");
            ExitCode::from(127)
        }
    }
}

/// `agent-orchestrator worker`: runs the Claude Code worker for one task.
pub async fn worker_main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match ao_worker::run_from_env().await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("agent-orchestrator worker: {e:#}");
            ExitCode::FAILURE
        }
    }
}
