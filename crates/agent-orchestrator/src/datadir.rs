//! The data directory's permissions. It holds the task store (every task's prompt, env and
//! results) and the local workers' folders, so it is private to the orchestrator's user:
//! 0700, or 0711 when local workers run as another user (`--worker-user`), who must traverse
//! it to reach their own folder but may not list it. The store's files are 0600 (see
//! `ao_store_sqlite`). A data directory left wider by an earlier version is tightened on
//! start, with a log line. Because a worker user can pass through the data directory, it
//! could open anything in it by name; so with `--worker-user`, whatever else of ours lies
//! directly in it (an API tokens file kept there, say) is closed to group and others too.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;
use tracing::{info, warn};

/// The mode the data directory must have.
pub fn mode(separate_worker_user: bool) -> u32 {
    if separate_worker_user { 0o711 } else { 0o700 }
}

/// Create `dir` (its parents as usual, itself private) or bring an existing one to its mode.
pub fn prepare(dir: &Path, separate_worker_user: bool) -> anyhow::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
    }
    let meta = fs::metadata(dir).with_context(|| format!("reading {}", dir.display()))?;
    let (had, want) = (meta.mode() & 0o7777, mode(separate_worker_user));
    // Never change a folder we do not own or a shared one such as /tmp: say so instead.
    let shared = had & 0o1000 != 0 || meta.uid() != nix::unistd::geteuid().as_raw();
    if separate_worker_user && !shared {
        close_entries(dir)?;
    }
    if had == want {
        return Ok(());
    }
    if shared {
        warn!(dir = %dir.display(), mode = format!("{had:o}"), "the data directory is shared or not ours; its permissions are left as they are");
        return Ok(());
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(want))
        .with_context(|| format!("setting the permissions of {}", dir.display()))?;
    info!(dir = %dir.display(), from = format!("{had:o}"), to = format!("{want:o}"), "set the data directory's permissions");
    Ok(())
}

/// Take group and other permissions off every file and folder of ours directly in `dir` but
/// `workers/` (which the local runtime keeps at 0711 itself), saying so for each.
fn close_entries(dir: &Path) -> anyhow::Result<()> {
    let me = nix::unistd::geteuid().as_raw();
    let entries = fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        if entry.file_name() == "workers" {
            continue;
        }
        let path = entry.path();
        // Not through a link: its target is not ours to change.
        let meta =
            fs::symlink_metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        let had = meta.mode() & 0o7777;
        let ours = meta.uid() == me && (meta.is_file() || meta.is_dir());
        if !ours || had & 0o077 == 0 {
            continue;
        }
        let want = had & 0o700;
        fs::set_permissions(&path, fs::Permissions::from_mode(want))
            .with_context(|| format!("setting the permissions of {}", path.display()))?;
        info!(path = %path.display(), from = format!("{had:o}"), to = format!("{want:o}"), "closed a file in the data directory to the worker user");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(p: &Path) -> u32 {
        fs::metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn a_new_data_directory_is_private() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("a/b/data");
        prepare(&dir, false).unwrap();
        assert_eq!(mode_of(&dir), 0o700);
        let dir2 = t.path().join("data2");
        prepare(&dir2, true).unwrap();
        assert_eq!(mode_of(&dir2), 0o711);
    }

    #[test]
    fn an_open_data_directory_is_tightened() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("data");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        prepare(&dir, false).unwrap();
        assert_eq!(mode_of(&dir), 0o700);
    }

    #[test]
    fn with_a_worker_user_everything_else_in_it_is_closed() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("data");
        fs::create_dir_all(dir.join("workers")).unwrap();
        fs::create_dir(dir.join("backups")).unwrap();
        fs::write(dir.join("api-tokens"), "token\n").unwrap();
        for (p, m) in [
            ("api-tokens", 0o644),
            ("backups", 0o755),
            ("workers", 0o711),
        ] {
            fs::set_permissions(dir.join(p), fs::Permissions::from_mode(m)).unwrap();
        }
        std::os::unix::fs::symlink(t.path(), dir.join("link")).unwrap();
        let outside = mode_of(t.path());
        prepare(&dir, false).unwrap();
        assert_eq!(
            mode_of(&dir.join("api-tokens")),
            0o644,
            "private anyway: 0700"
        );
        prepare(&dir, true).unwrap();
        assert_eq!(mode_of(&dir), 0o711);
        assert_eq!(mode_of(&dir.join("api-tokens")), 0o600);
        assert_eq!(mode_of(&dir.join("backups")), 0o700);
        assert_eq!(mode_of(&dir.join("workers")), 0o711, "the runtime's own");
        assert_eq!(mode_of(t.path()), outside, "a link is not followed");
    }

    #[test]
    fn a_sticky_shared_directory_is_left_alone() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("shared");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o1777)).unwrap();
        fs::write(dir.join("someone's"), "").unwrap();
        fs::set_permissions(dir.join("someone's"), fs::Permissions::from_mode(0o644)).unwrap();
        prepare(&dir, false).unwrap();
        prepare(&dir, true).unwrap();
        assert_eq!(mode_of(&dir), 0o1777);
        assert_eq!(
            mode_of(&dir.join("someone's")),
            0o644,
            "a shared folder's files are not ours to close"
        );
    }
}
