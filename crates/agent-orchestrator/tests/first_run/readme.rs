//! The commands the README gives a new user, read from README.md as written.

use std::path::{Path, PathBuf};

/// The checkout (the README's folder).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

/// The text of section `## {title}`, up to the next `## `.
fn section(title: &str) -> String {
    let text = readme();
    let head = format!("\n## {title}\n");
    let from = text
        .find(&head)
        .unwrap_or_else(|| panic!("README has no `## {title}`"))
        + head.len();
    let rest = &text[from..];
    rest[..rest.find("\n## ").unwrap_or(rest.len())].to_owned()
}

/// The ```sh blocks of a section, each as its command lines (comments and blank lines out).
fn sh_blocks(section: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut parts = section.split("```");
    parts.next();
    while let (Some(block), _) = (parts.next(), parts.next()) {
        if let Some(body) = block.strip_prefix("sh\n") {
            out.push(
                body.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned)
                    .collect(),
            );
        }
    }
    out
}

/// The run command of "Two commands" (its first block).
pub fn run_command() -> String {
    let blocks = sh_blocks(&section("Two commands"));
    let run = blocks.first().expect("a run command");
    assert_eq!(run.len(), 1, "the run command is one line: {run:?}");
    run[0].clone()
}

/// The quick start: the first terminal's lines (the key, then the run command) and the
/// second terminal's CLI lines.
pub fn quick_start() -> (Vec<String>, Vec<String>) {
    let mut blocks = sh_blocks(&section("Quick start")).into_iter();
    let server = blocks.next().expect("the quick start's server block");
    let client = blocks.next().expect("the quick start's client block");
    (server, client)
}

const OUT_START: &str = "<!-- quick-start-output:start -->";
const OUT_END: &str = "<!-- quick-start-output:end -->";

/// What a quick-start line shows as typed (without its comment).
pub fn typed(line: &str) -> &str {
    line.split("  #").next().unwrap_or(line).trim_end()
}

/// Ids, times, pids and counts differ from run to run: uuids become `<id>`, digit runs `0`.
fn mask(text: &str) -> String {
    let ids: Vec<String> = text
        .split(|c: char| c.is_whitespace())
        .map(|t| t.trim_matches(|c: char| !c.is_ascii_hexdigit()))
        .filter(|t| t.len() == 36 && t.matches('-').count() == 4)
        .map(str::to_owned)
        .collect();
    let mut out = text.to_owned();
    for id in ids {
        out = out.replace(&id, "<id>");
    }
    let mut masked = String::with_capacity(out.len());
    let mut in_digits = false;
    for c in out.chars() {
        match (c.is_ascii_digit(), in_digits) {
            (true, false) => masked.push('0'),
            (true, true) => {}
            (false, _) => masked.push(c),
        }
        in_digits = c.is_ascii_digit();
    }
    masked
}

/// The README shows what the quick start printed in a real run: `actual`, up to what differs
/// between runs. `UPDATE_README=1` writes `actual` there.
pub fn check_output(actual: &str) {
    let block = format!(
        "{OUT_START}\nWhat it prints (this run's Claude Code talked to the tests' fake Anthropic API, \
         whence the model and the cost):\n\n```text\n{}\n```\n{OUT_END}",
        actual.trim_end()
    );
    let path = root().join("README.md");
    let text = readme();
    if std::env::var_os("UPDATE_README").is_some() {
        ao_testkit::readme::check_section(&path, OUT_START, OUT_END, &block, "");
        return;
    }
    let from = text
        .find(OUT_START)
        .expect("README has the quick start's output");
    let to = text.find(OUT_END).expect("the output's end marker") + OUT_END.len();
    assert_eq!(
        mask(&text[from..to]),
        mask(&block),
        "README's quick-start output is not what the quick start prints; run \
         UPDATE_README=1 cargo test -p agent-orchestrator --test first_run fresh"
    );
}
