//! Touching files inside a task folder without following links the worker planted.
//!
//! With `--worker-user`, a running task's folder belongs to the worker user, who may replace
//! any entry in it (`output.log`, `supervisor.pid`, `workspace`, …) with a symbolic link to
//! somewhere else. The orchestrator runs as root (or at least as the data dir's owner), so
//! following such a link would let a worker have the orchestrator read a file it may not read
//! (into the task's logs, through the API) or write, chmod or chown one it may not touch. Every
//! open here refuses a link as the last path component (`O_NOFOLLOW`) and works on the opened
//! descriptor; the components before it are folders the worker cannot change (the workers'
//! root, owned by the orchestrator), and `O_NONBLOCK` keeps a planted FIFO from hanging us.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::libc;

/// Replaces `path` with a new file (0600, `owner` if given) holding `bytes`. Whatever was there
/// (a file of an earlier run, or a link) is removed first, never written through.
pub(crate) fn create_private(
    path: &Path,
    bytes: &[u8],
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    remove_entry(path)?;
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    // Whatever the umask.
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
    }
    f.write_all(bytes)
}

/// Opens `path` for appending (created 0600 if missing), refusing a link.
pub(crate) fn append_private(path: &Path) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    regular(f)
}

/// At most `limit` bytes of the regular file `path` (not a link, FIFO or device).
pub(crate) fn read_small(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let f = open_read(path)?;
    let mut out = Vec::new();
    f.take(limit).read_to_end(&mut out)?;
    Ok(out)
}

/// Opens the regular file `path` for reading, refusing a link, FIFO or device.
pub(crate) fn open_read(path: &Path) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    regular(f)
}

/// Makes `path` a real folder, mode 0700, of `owner` if given: a link or file in its place is
/// removed first, and the mode and owner are set on the opened folder, not through a path.
pub(crate) fn private_dir(path: &Path, owner: Option<(u32, u32)>) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => remove_entry(path)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let d = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)?;
    d.set_permissions(fs::Permissions::from_mode(0o700))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::fchown(&d, Some(uid), Some(gid))?;
    }
    Ok(())
}

/// Removes a file or link at `path` (a link itself, never its target); missing is fine.
fn remove_entry(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The opened file, if it is a regular file with one name: a hard link the worker made to a
/// file elsewhere (possible where `fs.protected_hardlinks` is off) has two.
fn regular(f: File) -> std::io::Result<File> {
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata()?;
    if !m.is_file() {
        Err(std::io::Error::other("not a regular file"))
    } else if m.nlink() != 1 {
        Err(std::io::Error::other(
            "a file with other names (a hard link)",
        ))
    } else {
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_of_either_kind_is_not_read_through() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, b"not for the worker").unwrap();
        let hard = dir.path().join("hard.log");
        std::fs::hard_link(&secret, &hard).unwrap();
        let e = open_read(&hard).unwrap_err();
        assert!(e.to_string().contains("hard link"), "{e}");
        assert!(append_private(&hard).is_err());
        let soft = dir.path().join("soft.log");
        std::os::unix::fs::symlink(&secret, &soft).unwrap();
        assert!(open_read(&soft).is_err());
        let plain = dir.path().join("plain.log");
        std::fs::write(&plain, b"ok").unwrap();
        assert_eq!(read_small(&plain, 10).unwrap(), b"ok");
    }
}
