//! Finds the pinned Claude Code CLI, so tests fail loudly (never skip) when it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Path of the pinned Claude Code binary.
///
/// `AO_CLAUDE_BIN` wins; otherwise the project-local install made by
/// `scripts/install-claude.sh` (`<repo>/.tools/claude/node_modules/.bin/claude`).
///
/// # Panics
/// When no binary is found. Tests must fail, never silently skip: run
/// `scripts/install-claude.sh` (or set `AO_CLAUDE_BIN`) first.
pub fn claude_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("AO_CLAUDE_BIN").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            is_executable(&p),
            "AO_CLAUDE_BIN={} is not an executable file; run scripts/install-claude.sh",
            p.display()
        );
        return p;
    }
    let local = repo_root().join(".tools/claude/node_modules/.bin/claude");
    assert!(
        is_executable(&local),
        "Claude Code CLI not found at {} (CI={}).\n\
         Install the pinned version with `scripts/install-claude.sh` (needs npm), \
         or point AO_CLAUDE_BIN at a claude binary.",
        local.display(),
        std::env::var("CI").unwrap_or_default()
    );
    local
}

/// The version string `claude --version` prints (e.g. `2.1.190`), if it runs.
pub fn claude_version(bin: &Path) -> Option<String> {
    let out = Command::new(bin)
        .arg("--version")
        .env("DISABLE_AUTOUPDATER", "1")
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    s.split_whitespace().next().map(str::to_owned)
}

/// The workspace root (two levels above this crate).
pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crate lives in <root>/crates/ao-testkit")
        .to_path_buf()
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
