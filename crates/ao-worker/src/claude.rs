//! Finding the pinned Claude Code CLI, so a worker that cannot run its agent says so in its
//! own words (`agent_unavailable`) instead of blaming the agent, and so `serve` and `doctor`
//! check exactly what the worker will run.
//!
//! Order: `AO_CLAUDE_BIN` when it is a path; otherwise the name (`claude` by default) on
//! `PATH`, then the project-local install `scripts/install-claude.sh` makes
//! (`<checkout>/.tools/claude/node_modules/.bin/claude`; the checkout is the one this binary
//! was built from, so `cargo run --release -- serve` finds it whatever the current folder or
//! the target folder). Of those two, the first with the pinned version wins.
//!
//! The pinned version has one source: `CLAUDE_CODE_VERSION=` in `scripts/install-claude.sh`,
//! read at compile time (the worker image checks its own against the same line).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, SystemTime};

/// The install script, the one place the pinned version is written.
const INSTALL_SCRIPT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../scripts/install-claude.sh"
));

/// How long `claude --version` may take.
const VERSION_TIMEOUT: Duration = Duration::from_secs(15);

/// The command that installs the pinned version, for fix lines.
pub const INSTALL_COMMAND: &str = "scripts/install-claude.sh";

/// The pinned Claude Code version (`2.1.190`), from `scripts/install-claude.sh`.
pub fn pinned_version() -> &'static str {
    static V: LazyLock<&'static str> = LazyLock::new(|| {
        INSTALL_SCRIPT
            .lines()
            .find_map(|l| l.strip_prefix("CLAUDE_CODE_VERSION="))
            .map(|v| v.trim().trim_matches('"'))
            .expect("scripts/install-claude.sh sets CLAUDE_CODE_VERSION")
    });
    &V
}

/// The checkout this binary was built from.
pub fn checkout_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the crate lives in <root>/crates/ao-worker")
        .to_path_buf()
}

/// Where `scripts/install-claude.sh` puts the binary by default.
pub fn pinned_install() -> PathBuf {
    checkout_root().join(".tools/claude/node_modules/.bin/claude")
}

/// Where the binary in use was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `AO_CLAUDE_BIN`, a path.
    Configured,
    /// The name, on `PATH`.
    Path,
    /// The project-local pinned install.
    PinnedInstall,
}

/// A usable Claude Code: the pinned version, executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub bin: PathBuf,
    pub source: Source,
    pub version: String,
}

/// Why Claude Code cannot run. The texts name paths, never environment values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("Claude Code not found: no `{name}` on PATH and no pinned install at {}", pinned.display())]
    Missing { name: String, pinned: PathBuf },
    #[error("Claude Code not found at {} (AO_CLAUDE_BIN)", bin.display())]
    NotFound { bin: PathBuf },
    #[error("Claude Code at {} is not an executable file", bin.display())]
    NotExecutable { bin: PathBuf },
    #[error("Claude Code at {} cannot be reached by this user (a folder on the way is closed to it)", bin.display())]
    NotReachable { bin: PathBuf },
    #[error("Claude Code at {} is version {found}, not the pinned {pinned}", bin.display())]
    WrongVersion {
        bin: PathBuf,
        found: String,
        pinned: String,
    },
    #[error("Claude Code at {} does not report a version: {detail}", bin.display())]
    NoVersion { bin: PathBuf, detail: String },
}

impl Unavailable {
    /// One line saying how to get the pinned Claude Code.
    pub fn fix(&self) -> String {
        if let Unavailable::NotReachable { .. } = self {
            return format!(
                "install it where every worker user can reach it: `CLAUDE_PREFIX=/opt/claude \
                 {INSTALL_COMMAND}`, then AO_CLAUDE_BIN=/opt/claude/node_modules/.bin/claude"
            );
        }
        format!(
            "run `{INSTALL_COMMAND}` (installs Claude Code {} into .tools/claude, where it is \
             found), or set AO_CLAUDE_BIN to a Claude Code {} binary",
            pinned_version(),
            pinned_version()
        )
    }
}

/// Find the Claude Code to run. `configured` is `AO_CLAUDE_BIN` (or `claude`), `path` the
/// `PATH` to search.
pub async fn locate(configured: &Path, path: Option<&OsStr>) -> Result<Found, Unavailable> {
    locate_with(configured, path, &pinned_install()).await
}

/// [`locate`], with the pinned install at `pinned`.
async fn locate_with(
    configured: &Path,
    path: Option<&OsStr>,
    pinned: &Path,
) -> Result<Found, Unavailable> {
    if configured.components().count() > 1 {
        return check(configured, Source::Configured).await;
    }
    let name = configured.to_string_lossy().into_owned();
    let on_path = on_path(configured, path);
    let mut candidates: Vec<(PathBuf, Source)> = on_path
        .iter()
        .find(|p| is_executable(p))
        .map(|p| (p.clone(), Source::Path))
        .into_iter()
        .collect();
    if name == "claude" && !absent(pinned) {
        candidates.push((pinned.to_path_buf(), Source::PinnedInstall));
    }
    // One this user cannot reach (a folder on the way closed to it) is checked last, so that
    // the problem says so instead of "not found".
    if let Some(closed) = on_path.iter().find(|p| closed_to_us(p)) {
        candidates.push((closed.clone(), Source::Path));
    }
    let mut first_problem = None;
    for (bin, source) in candidates {
        match check(&bin, source).await {
            Ok(found) => return Ok(found),
            Err(e) => {
                first_problem.get_or_insert(e);
            }
        }
    }
    Err(first_problem.unwrap_or(Unavailable::Missing {
        name,
        pinned: pinned.to_path_buf(),
    }))
}

/// Nothing is at `p` (a folder on the way that is closed to us is not "nothing").
fn absent(p: &Path) -> bool {
    matches!(std::fs::metadata(p), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
}

/// `p` can't be looked at because a folder on the way is closed to this user.
fn closed_to_us(p: &Path) -> bool {
    matches!(std::fs::metadata(p), Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied)
}

/// The file exists, is executable and is the pinned version.
async fn check(bin: &Path, source: Source) -> Result<Found, Unavailable> {
    let meta = std::fs::metadata(bin).map_err(|e| {
        let bin = bin.to_path_buf();
        match e.kind() {
            std::io::ErrorKind::PermissionDenied => Unavailable::NotReachable { bin },
            _ => Unavailable::NotFound { bin },
        }
    })?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(Unavailable::NotExecutable {
            bin: bin.to_path_buf(),
        });
    }
    let version = version(bin, meta.modified().ok(), meta.len()).await?;
    if version != pinned_version() {
        return Err(Unavailable::WrongVersion {
            bin: bin.to_path_buf(),
            found: version,
            pinned: pinned_version().to_owned(),
        });
    }
    Ok(Found {
        bin: bin.to_path_buf(),
        source,
        version,
    })
}

type VersionKey = (PathBuf, Option<SystemTime>, u64);

/// `bin --version`, remembered per file (path, mtime, size): checking again is a `stat`.
async fn version(bin: &Path, mtime: Option<SystemTime>, len: u64) -> Result<String, Unavailable> {
    static SEEN: LazyLock<Mutex<HashMap<VersionKey, String>>> = LazyLock::new(Default::default);
    let key = (bin.to_path_buf(), mtime, len);
    if let Some(v) = SEEN.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(v.clone());
    }
    let no_version = |detail: String| Unavailable::NoVersion {
        bin: bin.to_path_buf(),
        detail,
    };
    // Nothing secret reaches it (no API key, no GitHub or callback token): only what it needs
    // to start.
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("--version").env_clear();
    for name in ["PATH", "HOME", "TMPDIR", "LANG"] {
        if let Some(v) = std::env::var_os(name) {
            cmd.env(name, v);
        }
    }
    let run = cmd
        .env("DISABLE_AUTOUPDATER", "1")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(VERSION_TIMEOUT, run).await {
        Err(_) => return Err(no_version("`--version` did not answer in time".into())),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(Unavailable::NotExecutable {
                bin: bin.to_path_buf(),
            });
        }
        Ok(Err(e)) => return Err(no_version(e.to_string())),
        Ok(Ok(out)) => out,
    };
    // `claude --version` prints e.g. "2.1.190 (Claude Code)".
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text
        .split_whitespace()
        .next()
        .filter(|v| out.status.success() && v.starts_with(|c: char| c.is_ascii_digit()))
        .ok_or_else(|| no_version(format!("`--version` exited with {}", out.status)))?
        .to_owned();
    SEEN.lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, v.clone());
    Ok(v)
}

/// The binary [`locate`] would try first, as this user sees the files (so that `serve` can
/// check that a worker user may run it): `configured` when it is a path, else the first
/// executable `claude` on `path`, else the pinned install if it is there.
pub fn first_candidate(configured: &Path, path: Option<&OsStr>) -> Option<PathBuf> {
    if configured.components().count() > 1 {
        return Some(configured.to_path_buf());
    }
    let pinned = pinned_install();
    on_path(configured, path)
        .into_iter()
        .find(|p| is_executable(p))
        .or_else(|| (configured == Path::new("claude") && !absent(&pinned)).then_some(pinned))
}

/// `name` in each absolute folder of `path`, in order.
fn on_path(name: &Path, path: Option<&OsStr>) -> Vec<PathBuf> {
    path.map(|p| std::env::split_paths(p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .collect()
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    fn script(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn the_pin_is_read_from_the_install_script() {
        let v = pinned_version();
        assert!(v.split('.').count() == 3 && v.chars().all(|c| c.is_ascii_digit() || c == '.'));
        assert!(INSTALL_SCRIPT.contains(&format!("CLAUDE_CODE_VERSION=\"{v}\"")));
    }

    #[tokio::test]
    async fn each_way_of_being_unavailable_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let missing = d.join("nope");
        assert_eq!(
            locate(&missing, None).await,
            Err(Unavailable::NotFound {
                bin: missing.clone()
            })
        );
        let plain = script(d, "plain", "echo hi", 0o644);
        assert_eq!(
            locate(&plain, None).await,
            Err(Unavailable::NotExecutable { bin: plain.clone() })
        );
        let old = script(d, "old", "echo '1.0.0 (Claude Code)'", 0o755);
        let e = locate(&old, None).await.unwrap_err();
        assert!(
            matches!(&e, Unavailable::WrongVersion { found, .. } if found == "1.0.0"),
            "{e}"
        );
        assert!(e.fix().contains(pinned_version()) && e.fix().contains(INSTALL_COMMAND));
        let mute = script(d, "mute", "exit 3", 0o755);
        assert!(matches!(
            locate(&mute, None).await,
            Err(Unavailable::NoVersion { .. })
        ));
        let e = locate(Path::new("no-such-claude"), Some(d.as_os_str()))
            .await
            .unwrap_err();
        assert!(matches!(e, Unavailable::Missing { .. }), "{e}");
    }

    #[tokio::test]
    async fn the_name_is_found_on_path_with_the_pinned_version() {
        let dir = tempfile::tempdir().unwrap();
        let body = format!("echo '{} (Claude Code)'", pinned_version());
        let good = script(dir.path(), "claude-x", &body, 0o755);
        let path = std::env::join_paths(["/nonexistent".as_ref(), dir.path()]).unwrap();
        let found = locate(Path::new("claude-x"), Some(&path)).await.unwrap();
        assert_eq!((found.bin, found.source), (good, Source::Path));
        assert_eq!(found.version, pinned_version());
    }

    #[tokio::test]
    async fn the_pinned_install_comes_after_path_and_wins_over_another_version() {
        let dir = tempfile::tempdir().unwrap();
        let (on_path, tools) = (dir.path().join("bin"), dir.path().join("tools"));
        std::fs::create_dir_all(&on_path).unwrap();
        std::fs::create_dir_all(&tools).unwrap();
        let body = format!("echo '{} (Claude Code)'", pinned_version());
        let pinned = script(&tools, "claude", &body, 0o755);
        let path = on_path.clone().into_os_string();
        let claude = Path::new("claude");
        let found = locate_with(claude, Some(&path), &pinned).await.unwrap();
        assert_eq!(
            (found.bin, found.source),
            (pinned.clone(), Source::PinnedInstall)
        );
        script(&on_path, "claude", "echo '3.0.0 (Claude Code)'", 0o755);
        let found = locate_with(claude, Some(&path), &pinned).await.unwrap();
        assert_eq!(
            found.source,
            Source::PinnedInstall,
            "the pinned version wins"
        );
        let gone = tools.join("none");
        let e = locate_with(claude, Some(&path), &gone).await.unwrap_err();
        assert!(matches!(e, Unavailable::WrongVersion { .. }), "{e}");
    }

    /// As another user (nobody), a `claude` on PATH or a pinned install behind a folder closed
    /// to it is "cannot be reached", not "not found": the test runs itself again as nobody
    /// (it needs root to switch, and fails without it rather than skip).
    #[test]
    fn behind_a_closed_folder_is_not_reachable_rather_than_missing() {
        const CHILD: &str = "AO_CLAUDE_CLOSED_TEST_DIR";
        if let Some(dir) = std::env::var_os(CHILD) {
            let closed = Path::new(&dir).join("closed");
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let pinned = closed.join("pinned/claude");
            let on_path = rt.block_on(locate_with(
                Path::new("claude"),
                Some(closed.as_os_str()),
                &Path::new(&dir).join("none"),
            ));
            assert_eq!(
                on_path,
                Err(Unavailable::NotReachable {
                    bin: closed.join("claude")
                })
            );
            let pinned_only = rt.block_on(locate_with(Path::new("claude"), None, &pinned));
            assert_eq!(pinned_only, Err(Unavailable::NotReachable { bin: pinned }));
            return;
        }
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test switches to nobody: run it as root"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let closed = dir.path().join("closed");
        std::fs::create_dir_all(closed.join("pinned")).unwrap();
        script(&closed, "claude", "echo", 0o755);
        script(&closed.join("pinned"), "claude", "echo", 0o755);
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
        let me = std::env::current_exe().unwrap();
        let out = std::process::Command::new(&me)
            .args([
                "claude::tests::behind_a_closed_folder_is_not_reachable_rather_than_missing",
                "--exact",
                "--nocapture",
            ])
            .env(CHILD, dir.path())
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "as nobody:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "the child ran no test"
        );
    }
}
