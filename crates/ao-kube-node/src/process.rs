//! Starting a container's command as a local process, isolated as far as a test needs: its
//! own process group; a private mount namespace (`/` made rprivate, each volume bind-mounted
//! at its mountPath, `/` remounted read-only for `readOnlyRootFilesystem`); then its groups,
//! gid and uid, `PR_SET_NO_NEW_PRIVS` and its working directory. Output goes to the log.
//!
//! This is the crate's only `unsafe`: `pre_exec`, because std's `CommandExt::uid/gid` switch
//! user *before* pre_exec closures run, and the mounts must be made as root first.

use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;

use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::{OFlag, open};
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{Signal, killpg};
use nix::sys::stat::Mode as FileMode;
use nix::unistd::{Gid, Pid, Uid, chdir, setgid, setgroups, setuid};
use tokio::task::JoinHandle;

use crate::logs::{self, LogWriter};
use crate::security::Identity;
use crate::volumes::Mount;

/// What to run.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub identity: Identity,
    pub mounts: Vec<Mount>,
    /// A host directory (the image's) that a mount covers: bound again, read-only, at its own
    /// path after the volumes, so the container still finds its programs there.
    pub keep_visible: Option<PathBuf>,
}

/// A started container process.
pub(crate) struct Running {
    pub child: tokio::process::Child,
    /// Its process group (its pid): signals go to the whole group.
    pub pgid: i32,
    /// The copies of stdout and stderr into the log; they end when the group's pipes close.
    pub pumps: Vec<JoinHandle<()>>,
    /// Kills the group if the supervisor is dropped early (a test's runtime shutting down).
    pub _guard: GroupGuard,
}

/// SIGKILLs a process group when dropped.
pub(crate) struct GroupGuard(pub i32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        signal_group(self.0, Signal::SIGKILL);
    }
}

/// Everything the forked child needs, made before the fork so the child never allocates.
struct Prepared {
    mounts: Vec<Bind>,
    /// Room for the mount sources' descriptors (reserved: pushing in the child never allocates).
    fds: Vec<OwnedFd>,
    cwd: CString,
    root: CString,
    groups: Vec<Gid>,
    uid: Uid,
    gid: Gid,
    no_new_privs: bool,
    read_only_root: bool,
}

/// One bind mount. Its source is opened (`O_PATH`) before any mount is made and mounted as
/// `/proc/self/fd/N`, so a mount over a parent of a later source (an emptyDir at `/tmp`, with
/// the node's work dir under /tmp) cannot hide it.
struct Bind {
    source: CString,
    target: CString,
    read_only: bool,
    /// `/proc/self/fd/N` with its NUL, written in the child.
    fd_path: [u8; 40],
    /// The target's bytes with a NUL, when its parents are to be made first (`mkdir -p`).
    parents: Option<Vec<u8>>,
}

/// `mkdir -p` of `path` (NUL-terminated) in place, without allocating: each `/` is turned
/// into a NUL for one `mkdir`, then back.
fn mkdir_parents(path: &mut [u8]) {
    let mode = FileMode::from_bits_truncate(0o755);
    for i in 1..path.len() {
        if path[i] == b'/' || path[i] == 0 {
            let was = path[i];
            path[i] = 0;
            if let Ok(dir) = CStr::from_bytes_until_nul(&path[..]) {
                let _ = nix::unistd::mkdir(dir, mode);
            }
            path[i] = was;
            if was == 0 {
                break;
            }
        }
    }
}

fn cstring(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

/// Writes `/proc/self/fd/<fd>` and a NUL into `buf` without allocating.
fn fd_path(buf: &mut [u8; 40], fd: i32) -> &CStr {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 12];
    let (mut n, mut len) = (fd.unsigned_abs(), 0);
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[PREFIX.len() + i] = digits[len - 1 - i];
    }
    buf[PREFIX.len() + len] = 0;
    CStr::from_bytes_until_nul(&buf[..]).unwrap_or(c"/nonexistent")
}

impl Prepared {
    fn new(spec: &Spec) -> std::io::Result<Self> {
        let bind = |source: &Path, target: &Path, read_only: bool, parents: bool| {
            let target = cstring(target)?;
            Ok(Bind {
                source: cstring(source)?,
                parents: parents.then(|| target.as_bytes_with_nul().to_vec()),
                target,
                read_only,
                fd_path: [0; 40],
            })
        };
        let mut mounts = spec
            .mounts
            .iter()
            .map(|m| bind(&m.source, &m.target, m.read_only, false))
            .collect::<std::io::Result<Vec<_>>>()?;
        if let Some(dir) = &spec.keep_visible {
            mounts.push(bind(dir, dir, true, true)?);
        }
        let id = &spec.identity;
        Ok(Prepared {
            fds: Vec::with_capacity(mounts.len()),
            mounts,
            cwd: cstring(&spec.cwd)?,
            root: cstring(Path::new("/"))?,
            groups: id.groups.iter().copied().map(Gid::from_raw).collect(),
            uid: Uid::from_raw(id.uid),
            gid: Gid::from_raw(id.gid),
            no_new_privs: id.no_new_privs,
            read_only_root: id.read_only_root,
        })
    }

    /// Runs in the forked child: only system calls on data prepared above.
    fn enter(&mut self) -> nix::Result<()> {
        let none: Option<&CStr> = None;
        unshare(CloneFlags::CLONE_NEWNS)?;
        let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
        mount(none, self.root.as_c_str(), none, private, none)?;
        // Open every source in this namespace before the first mount can hide one.
        for b in &self.mounts {
            let fd = open(
                b.source.as_c_str(),
                OFlag::O_PATH | OFlag::O_CLOEXEC,
                FileMode::empty(),
            )?;
            self.fds.push(fd);
        }
        let ro = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
        for (b, fd) in self.mounts.iter_mut().zip(&self.fds) {
            // A mount point inside an earlier mount (an emptyDir at /tmp, then /tmp/x) does
            // not exist there yet: make it, as runc does (it exists already otherwise).
            match b.parents.as_mut() {
                Some(path) => mkdir_parents(path),
                None => {
                    let _ = nix::unistd::mkdir(
                        b.target.as_c_str(),
                        FileMode::from_bits_truncate(0o755),
                    );
                }
            }
            let source = fd_path(&mut b.fd_path, fd.as_raw_fd());
            let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
            mount(Some(source), b.target.as_c_str(), none, bind, none)?;
            if b.read_only {
                mount(none, b.target.as_c_str(), none, ro, none)?;
            }
        }
        if self.read_only_root {
            // MS_BIND: only this namespace's view of `/` becomes read-only, never the host's.
            mount(none, self.root.as_c_str(), none, ro, none)?;
        }
        setgroups(&self.groups)?;
        setgid(self.gid)?;
        setuid(self.uid)?;
        if self.no_new_privs {
            nix::sys::prctl::set_no_new_privs()?;
        }
        chdir(self.cwd.as_c_str())
    }
}

/// Starts the process; its output is copied into `log`.
pub(crate) fn spawn(spec: &Spec, log: Arc<LogWriter>) -> std::io::Result<Running> {
    let (program, args) = spec.argv.split_first().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no command specified")
    })?;
    let mut prepared = Prepared::new(spec)?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: the closure runs in the child between fork and exec. It only makes system calls
    // (unshare, open, mkdir, mount, setgroups, setgid, setuid, prctl, chdir) on `prepared`,
    // which was built before the fork; it pushes descriptors into a Vec whose capacity was
    // reserved, formats paths into fixed buffers (or in place, for `mkdir -p`), and turns errno into `io::Error` (no
    // allocation anywhere).
    unsafe {
        cmd.pre_exec(move || prepared.enter().map_err(std::io::Error::from));
    }
    let mut child = cmd.spawn()?;
    let pgid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
    let mut pumps = Vec::new();
    if let Some(out) = child.stdout.take() {
        pumps.push(tokio::spawn(logs::pump(out, "stdout", log.clone())));
    }
    if let Some(err) = child.stderr.take() {
        pumps.push(tokio::spawn(logs::pump(err, "stderr", log)));
    }
    Ok(Running {
        child,
        pgid,
        pumps,
        _guard: GroupGuard(pgid),
    })
}

/// Sends `signal` to the process group (gone already is fine).
pub(crate) fn signal_group(pgid: i32, signal: Signal) {
    if pgid > 0 {
        let _ = killpg(Pid::from_raw(pgid), signal);
    }
}

/// The exit code a container runtime reports: the code, or 128 + the signal that killed it.
pub(crate) fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(128)
}

/// PATH for an image directory, as the task brief fixes it.
pub(crate) fn image_path(dir: &Path) -> String {
    format!("{}/bin:/usr/local/bin:/usr/bin:/bin", dir.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mkdir_parents_makes_every_level() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a/b/c");
        let mut buf = CString::new(target.as_os_str().as_bytes())
            .unwrap()
            .into_bytes_with_nul();
        mkdir_parents(&mut buf);
        assert!(target.is_dir());
        assert_eq!(
            buf,
            CString::new(target.as_os_str().as_bytes())
                .unwrap()
                .into_bytes_with_nul()
        );
    }

    #[test]
    fn fd_paths_are_written_without_allocating() {
        let mut buf = [0u8; 40];
        assert_eq!(fd_path(&mut buf, 7), c"/proc/self/fd/7");
        assert_eq!(fd_path(&mut buf, 1234567), c"/proc/self/fd/1234567");
        assert_eq!(fd_path(&mut buf, 0), c"/proc/self/fd/0");
    }
}
