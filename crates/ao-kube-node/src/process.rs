//! Starting a container's command as a local process, isolated as far as a test needs: its
//! own process group; a private mount namespace (`/` made rprivate, each volume bind-mounted
//! at its mountPath, `/` remounted read-only for `readOnlyRootFilesystem`); then its groups,
//! gid and uid, `PR_SET_NO_NEW_PRIVS` and its working directory. Output goes to the log.
//!
//! This is the crate's only `unsafe`: `pre_exec`, because std's `CommandExt::uid/gid` switch
//! user *before* pre_exec closures run, and the mounts must be made as root first.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{Signal, killpg};
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
}

/// A started container process.
pub(crate) struct Running {
    pub child: tokio::process::Child,
    /// Its process group (its pid): signals go to the whole group.
    pub pgid: i32,
    /// The copies of stdout and stderr into the log; they end when the group's pipes close.
    pub pumps: Vec<JoinHandle<()>>,
}

/// Everything the forked child needs, made before the fork so the child never allocates.
struct Prepared {
    mounts: Vec<(CString, CString, bool)>,
    cwd: CString,
    root: CString,
    groups: Vec<Gid>,
    uid: Uid,
    gid: Gid,
    no_new_privs: bool,
    read_only_root: bool,
}

fn cstring(p: &Path) -> std::io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

impl Prepared {
    fn new(spec: &Spec) -> std::io::Result<Self> {
        let mounts = spec
            .mounts
            .iter()
            .map(|m| Ok((cstring(&m.source)?, cstring(&m.target)?, m.read_only)))
            .collect::<std::io::Result<_>>()?;
        let id = &spec.identity;
        Ok(Prepared {
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
    fn enter(&self) -> nix::Result<()> {
        let none: Option<&std::ffi::CStr> = None;
        unshare(CloneFlags::CLONE_NEWNS)?;
        mount(
            none,
            self.root.as_c_str(),
            none,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            none,
        )?;
        let ro = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
        for (source, target, read_only) in &self.mounts {
            mount(
                Some(source.as_c_str()),
                target.as_c_str(),
                none,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                none,
            )?;
            if *read_only {
                mount(none, target.as_c_str(), none, ro, none)?;
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
    let prepared = Prepared::new(spec)?;
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
    // (unshare, mount, setgroups, setgid, setuid, prctl, chdir) on `prepared`, which was built
    // before the fork, and turns their errno into `io::Error` without allocating.
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
    Ok(Running { child, pgid, pumps })
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
