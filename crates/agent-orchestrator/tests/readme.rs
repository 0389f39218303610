//! The README's configuration reference is `serve --help`, verbatim. Run with
//! `UPDATE_README=1` to regenerate it.

use agent_orchestrator::cli::Cli;
use clap::CommandFactory;

#[test]
fn readme_configuration_reference_matches_serve_help() {
    let mut cmd = Cli::command().term_width(100);
    let serve = cmd.find_subcommand_mut("serve").unwrap();
    let help = serve.render_long_help().to_string();
    let block = format!(
        "<!-- serve-help:start -->\n```text\n{}\n```\n<!-- serve-help:end -->",
        help.trim_end()
    );
    ao_testkit::readme::check_section(
        std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")),
        "<!-- serve-help:start -->",
        "<!-- serve-help:end -->",
        &block,
        "cargo test -p agent-orchestrator --test readme",
    );
}
