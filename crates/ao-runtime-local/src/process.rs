//! Process plumbing: preparing a task folder, spawning the supervisor in its own process
//! group, waiting for it (as our child, or through a pidfd after a restart), and signalling
//! the whole group.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use ao_core::runtime::ExitInfo;
use ao_core::task::Task;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;
use tokio::process::{Child, Command};

use crate::supervise::ExitRecord;
use crate::{LocalConfig, nofollow};

/// Mode of the workers' root: private, or traversable (not listable) when workers run as
/// another user, who must reach their own folder inside it.
pub(crate) fn root_mode(separate_user: bool) -> u32 {
    if separate_user { 0o711 } else { 0o700 }
}

/// Create the workers' root, or bring an existing one to its mode (saying so when it changes).
pub(crate) fn prepare_root(root: &Path, separate_user: bool) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)?;
    let want = root_mode(separate_user);
    let had = fs::metadata(root)?.permissions().mode() & 0o7777;
    if had != want {
        fs::set_permissions(root, fs::Permissions::from_mode(want))?;
        tracing::info!(dir = %root.display(), from = format!("{had:o}"), to = format!("{want:o}"), "set the workers' folder permissions");
    }
    Ok(())
}

/// Creates (or, for a relaunch, resets) the task folder and its `workspace/`, `home/` and
/// `tmp/`, all 0700 and of the worker user if there is one, and writes `task.json`. Nothing a
/// worker of an earlier run left in the folder is followed (see [`crate::nofollow`]).
pub(crate) fn prepare_dir(
    dir: &Path,
    task: &Task,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    // The task folder's parent is the workers' root, which a worker cannot change.
    for p in [
        dir.to_path_buf(),
        dir.join("workspace"),
        dir.join("home"),
        dir.join("tmp"),
    ] {
        nofollow::private_dir(&p, owner)?;
    }
    nofollow::create_private(
        &dir.join("task.json"),
        &serde_json::to_vec(&task.spec)?,
        owner,
    )?;
    // A relaunch after a restart starts a fresh run.
    let _ = fs::remove_file(dir.join("exit.json"));
    Ok(())
}

pub(crate) fn spawn(
    cfg: &LocalConfig,
    dir: &Path,
    env: Vec<(String, String)>,
) -> std::io::Result<Child> {
    let log = nofollow::append_private(&dir.join("supervisor.log"))?;
    let mut cmd = Command::new(&cfg.supervisor);
    cmd.arg("supervise")
        .arg("--dir")
        .arg(dir)
        .arg("--")
        .args(&cfg.worker_command)
        .env_clear()
        .envs(env)
        .current_dir(dir.join("workspace"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .kill_on_drop(false);
    if let Some((uid, gid)) = cfg.run_as {
        // The standard library also drops supplementary groups when root changes user.
        cmd.uid(uid).gid(gid);
    }
    let child = cmd.spawn()?;
    if let Some(pid) = child.id() {
        write_private(&dir.join("supervisor.pid"), pid.to_string().as_bytes())?;
    }
    Ok(child)
}

/// Replace `path` with `bytes`, readable by its owner only (a link there is replaced, not
/// followed).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    nofollow::create_private(path, bytes, None)
}

/// A finished worker's folder goes back to the orchestrator's user (mode 0700), so workers of
/// later tasks, which run as the same worker user, cannot read it. Nothing to do when workers
/// run as the orchestrator's own user.
pub(crate) fn seal(dir: &Path, run_as: Option<(u32, u32)>) {
    if run_as.is_none() {
        return;
    }
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    let r = std::os::unix::fs::chown(dir, Some(uid.as_raw()), Some(gid.as_raw()))
        .and_then(|()| fs::set_permissions(dir, fs::Permissions::from_mode(0o700)));
    if let Err(e) = r
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %e, dir = %dir.display(), "could not close the finished worker's folder to other workers");
    }
}

/// The pid of a supervisor that still runs for this task folder, if any. The command line
/// is checked so a recycled pid is never mistaken for our worker.
pub(crate) fn live_supervisor(dir: &Path) -> Option<i32> {
    let raw = nofollow::read_small(&dir.join("supervisor.pid"), 32).ok()?;
    let pid: i32 = std::str::from_utf8(&raw).ok()?.trim().parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // A zombie has exited; it only waits to be reaped.
    let state = stat.rsplit(')').next()?.split_whitespace().next()?;
    let dir_arg = dir.as_os_str().as_encoded_bytes();
    let ours = cmdline.split(|b| *b == 0).any(|a| a == dir_arg);
    (ours && state != "Z").then_some(pid)
}

pub(crate) fn read_exit(dir: &Path) -> Option<ExitRecord> {
    serde_json::from_slice(&nofollow::read_small(&dir.join("exit.json"), 4096).ok()?).ok()
}

/// The exit as the supervisor recorded it, or as the supervisor's own status shows it.
pub(crate) fn exit_info(dir: &Path, status: Option<ExitStatus>) -> ExitInfo {
    if let Some(rec) = read_exit(dir) {
        return rec.into();
    }
    match status {
        Some(s) => ExitInfo {
            code: s.code(),
            signal: s.signal(),
            ..Default::default()
        },
        None => ExitInfo {
            message: Some("the worker ended without recording its exit status".into()),
            ..Default::default()
        },
    }
}

/// Delete the worker's private HOME and TMPDIR once it has ended. Tools keep their own state
/// there (Claude Code writes session transcripts, which can echo environment values), so they
/// must not outlive the run; the workspace and output stay until cleanup.
pub(crate) async fn remove_scratch(dir: &Path) {
    for sub in ["home", "tmp"] {
        if let Err(e) = tokio::fs::remove_dir_all(dir.join(sub)).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, dir = %dir.join(sub).display(), "removing worker scratch space failed");
        }
    }
}

/// SIGTERM the worker's process group now, SIGKILL it after `grace` if it still runs.
pub(crate) fn terminate_group(pid: i32, grace: Duration) {
    let pgid = Pid::from_raw(pid);
    if grace.is_zero() {
        let _ = killpg(pgid, Signal::SIGKILL);
        return;
    }
    let _ = killpg(pgid, Signal::SIGTERM);
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        // Fails harmlessly with ESRCH once the group is gone.
        let _ = killpg(pgid, Signal::SIGKILL);
    });
}

/// How we learn that a worker's supervisor ended.
pub(crate) enum Waiter {
    /// Our own child: we get its exit status.
    Child(Child),
    /// A survivor from an earlier orchestrator: a pidfd becomes readable when it exits.
    Pidfd(AsyncFd<std::os::fd::OwnedFd>),
}

impl Waiter {
    pub(crate) fn adopt(pid: i32) -> std::io::Result<Self> {
        let pid = rustix::process::Pid::from_raw(pid)
            .ok_or_else(|| std::io::Error::other("invalid pid"))?;
        let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
        // `AsyncFd::new` is deprecated for types whose fd may be closed behind its back; an
        // `OwnedFd` owns its descriptor, so it is sound here (and `register` needs `unsafe`).
        #[allow(deprecated)]
        let fd = AsyncFd::new(fd)?;
        Ok(Waiter::Pidfd(fd))
    }

    pub(crate) async fn wait(self) -> Option<ExitStatus> {
        match self {
            Waiter::Child(mut c) => c.wait().await.ok(),
            Waiter::Pidfd(fd) => {
                let _ = fd.readable().await;
                None
            }
        }
    }
}
