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
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let start = readme
        .find("<!-- serve-help:start -->")
        .expect("start marker");
    let end = readme.find("<!-- serve-help:end -->").expect("end marker")
        + "<!-- serve-help:end -->".len();
    let updated = format!("{}{}{}", &readme[..start], block, &readme[end..]);
    if std::env::var_os("UPDATE_README").is_some() {
        std::fs::write(path, &updated).unwrap();
        return;
    }
    assert!(
        updated == readme,
        "README.md configuration reference is stale; run UPDATE_README=1 cargo test -p agent-orchestrator --test readme"
    );
}
