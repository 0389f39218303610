//! `agent-orchestrator`: reads the command line, sets up logging, and hands over to the
//! subcommand. Everything else lives in the library half of this crate.

use std::process::ExitCode;

use agent_orchestrator::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse_with_config_file();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("agent-orchestrator: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                agent_orchestrator::telemetry::init(cli.log_format);
                agent_orchestrator::serve::main(*args).await
            }
            Command::Doctor(args) => agent_orchestrator::doctor::main(*args).await,
            Command::Supervise(args) => agent_orchestrator::supervise_main(args).await,
            Command::Tasks(args) => agent_orchestrator::client::main(*args).await,
            Command::Completions { shell } => {
                let mut cmd = <Cli as clap::CommandFactory>::command();
                clap_complete::generate(
                    shell,
                    &mut cmd,
                    "agent-orchestrator",
                    &mut std::io::stdout(),
                );
                ExitCode::SUCCESS
            }
            Command::Worker => {
                agent_orchestrator::telemetry::init(cli.log_format);
                agent_orchestrator::worker_main().await
            }
        }
    })
}
