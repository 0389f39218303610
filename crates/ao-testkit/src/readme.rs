//! Drift checks for generated README sections: a section between two HTML-comment markers
//! must equal what the code generates, so documentation can't fall behind the code. With
//! `UPDATE_README=1` the check rewrites the section instead.

use std::path::Path;

/// Check that the text from `start` through `end` (both markers included) in `readme` is
/// `block`; `block` must itself begin with `start` and end with `end`. With `UPDATE_README`
/// set, write the new text instead. `rerun` names the command that regenerates the section.
pub fn check_section(readme: &Path, start: &str, end: &str, block: &str, rerun: &str) {
    let text = std::fs::read_to_string(readme)
        .unwrap_or_else(|e| panic!("reading {}: {e}", readme.display()));
    let from = text.find(start).expect("start marker");
    let to = text.find(end).expect("end marker") + end.len();
    let updated = format!("{}{}{}", &text[..from], block, &text[to..]);
    if std::env::var_os("UPDATE_README").is_some() {
        std::fs::write(readme, &updated).unwrap();
        return;
    }
    assert!(
        updated == text,
        "{} section {start} is stale; run UPDATE_README=1 {rerun}",
        readme.display()
    );
}
