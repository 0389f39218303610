//! The worker user (`--worker-user`): resolving it to ids, and checking, before any task runs,
//! that it can use its task folders and run the worker's programs.
//!
//! `serve` and `doctor` share this, so both parse `--worker-user` the same way and report the
//! same problems with the same fix. The check reads modes instead of switching user, so it
//! works without root and in tests: a worker starts with the worker user's uid and primary gid
//! only (the standard library drops supplementary groups when root changes user), which is
//! exactly what the mode bits are compared with. ACLs are not consulted.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Group, User};

/// A resolved worker user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerUser {
    /// The user's name, when the password database knows it.
    pub name: Option<String>,
    pub uid: u32,
    pub gid: u32,
}

impl WorkerUser {
    /// `name (uid:gid)`, or `uid:gid` for a user without a name.
    pub fn describe(&self) -> String {
        match &self.name {
            Some(n) => format!("{n} ({}:{})", self.uid, self.gid),
            None => format!("{}:{}", self.uid, self.gid),
        }
    }

    /// What `--worker-user` asks for, as ids.
    pub fn ids(&self) -> (u32, u32) {
        (self.uid, self.gid)
    }
}

/// Why a worker user cannot be used. [`WorkerUserError::fix`] says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum WorkerUserError {
    #[error("no such user `{0}`")]
    NoSuchUser(String),
    #[error("no such group `{0}`")]
    NoSuchGroup(String),
    #[error("the worker user must not be root, nor run with group root (gid 0)")]
    Root,
    #[error("looking up `{name}` failed")]
    Lookup {
        name: String,
        #[source]
        source: nix::Error,
    },
    #[error("worker user {user} cannot pass through {} (mode {mode:o}, owner {owner}:{group})", dir.display())]
    CannotTraverse {
        user: String,
        dir: PathBuf,
        mode: u32,
        owner: u32,
        group: u32,
    },
    #[error("worker user {user} cannot reach {} to run it: {} is in the way (mode {mode:o}, owner {owner}:{group})", program.display(), dir.display())]
    ProgramUnreachable {
        user: String,
        program: PathBuf,
        dir: PathBuf,
        mode: u32,
        owner: u32,
        group: u32,
    },
    #[error("worker user {user} cannot run {} (mode {mode:o}, owner {owner}:{group})", program.display())]
    CannotExecute {
        user: String,
        program: PathBuf,
        mode: u32,
        owner: u32,
        group: u32,
    },
    #[error(
        "the orchestrator cannot start processes as worker user {user}: that needs root (CAP_SETUID and CAP_SETGID)"
    )]
    CannotSwitch { user: String },
    #[error("cannot inspect {}", path.display())]
    Inspect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl WorkerUserError {
    /// One line saying how to fix it.
    pub fn fix(&self) -> String {
        match self {
            Self::NoSuchUser(u) => format!(
                "create the user (`useradd --system --no-create-home {u}`) or name an existing one, e.g. `--worker-user nobody`"
            ),
            Self::NoSuchGroup(g) => {
                format!("create the group (`groupadd --system {g}`) or leave `:group` out")
            }
            Self::Root => "name an unprivileged user, e.g. `--worker-user nobody`".into(),
            Self::Lookup { .. } => "check the system's user database (nsswitch)".into(),
            Self::CannotTraverse { dir, .. } => format!(
                "put the data directory where the worker user can reach it (e.g. `--data-dir /var/lib/agent-orchestrator`), or allow passing through: `chmod o+x {}`",
                dir.display()
            ),
            Self::ProgramUnreachable { program, dir, .. } => format!(
                "install it where the worker user can reach it (e.g. `cargo install --path crates/agent-orchestrator --root /usr/local`, `CLAUDE_PREFIX=/opt/claude scripts/install-claude.sh`, or `install -m 755 {} /usr/local/bin/`), or allow passing through: `chmod o+x {}`",
                program.display(),
                dir.display()
            ),
            Self::CannotExecute { program, .. } => format!(
                "install the program where the worker user can run it (e.g. `install -m 755 {} /usr/local/bin/`), or make it and its folders executable by others",
                program.display()
            ),
            Self::CannotSwitch { .. } => {
                "run the orchestrator as root, or leave out --worker-user (workers then run as the orchestrator's user)".into()
            }
            Self::Inspect { path, .. } => format!("check that {} exists", path.display()),
        }
    }
}

/// `name`, `uid`, `name:group` or `uid:gid` → the user. A numeric uid unknown to the system is
/// accepted (with its uid as gid unless a group is given); root is refused.
pub fn resolve_worker_user(spec: &str) -> Result<WorkerUser, WorkerUserError> {
    let lookup = |source| WorkerUserError::Lookup {
        name: spec.to_owned(),
        source,
    };
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let numeric = user.parse::<u32>().ok();
    let found = match numeric {
        Some(uid) => User::from_uid(uid.into()),
        None => User::from_name(user),
    }
    .map_err(lookup)?;
    let (name, uid, default_gid) = match (found, numeric) {
        (Some(u), _) => (Some(u.name), u.uid.as_raw(), u.gid.as_raw()),
        (None, Some(uid)) => (None, uid, uid),
        (None, None) => return Err(WorkerUserError::NoSuchUser(user.to_owned())),
    };
    let gid = match group {
        None => default_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => Group::from_name(g)
                .map_err(lookup)?
                .ok_or_else(|| WorkerUserError::NoSuchGroup(g.to_owned()))?
                .gid
                .as_raw(),
        },
    };
    // Group root too: files an image or a host leaves writable to group 0 would be the
    // worker's.
    if uid == 0 || gid == 0 {
        return Err(WorkerUserError::Root);
    }
    Ok(WorkerUser { name, uid, gid })
}

/// Resolves `spec` and checks that the user can use its task folders under `data_dir`
/// (`<data_dir>/workers/<task>/`) and run each of `programs` (the supervisor, the worker
/// command, the agent), and that this process may start processes as that user. Every folder
/// on the way must let the user pass, and each program must be executable by it. The data directory and `workers/` themselves are checked only
/// when `serve` would leave their mode alone (they exist and are shared or not ours);
/// otherwise `serve` sets them to 0711 itself.
pub fn check_worker_user(
    spec: &str,
    data_dir: &Path,
    programs: &[&Path],
) -> Result<WorkerUser, WorkerUserError> {
    let user = resolve_worker_user(spec)?;
    check_access(&user, data_dir, programs)?;
    if !can_switch_to(&user) {
        return Err(WorkerUserError::CannotSwitch {
            user: user.describe(),
        });
    }
    Ok(user)
}

/// Whether this process may start processes as `user`: it already is that user, or it holds
/// CAP_SETUID and CAP_SETGID (root does).
pub(crate) fn can_switch_to(user: &WorkerUser) -> bool {
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    if (uid.as_raw(), gid.as_raw()) == user.ids() {
        return true;
    }
    const CAP_SETGID: u32 = 6;
    const CAP_SETUID: u32 = 7;
    effective_caps().is_some_and(|c| c & (1 << CAP_SETGID) != 0 && c & (1 << CAP_SETUID) != 0)
}

/// The effective capability set, from `/proc/self/status`.
fn effective_caps() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// The access half of [`check_worker_user`], for a user already resolved.
pub fn check_access(
    user: &WorkerUser,
    data_dir: &Path,
    programs: &[&Path],
) -> Result<(), WorkerUserError> {
    let data_dir = absolute(data_dir)?;
    // From the root down, in the order the kernel walks them.
    for dir in outer_first(&data_dir) {
        check_dir(user, dir, false)?;
    }
    check_dir(user, &data_dir, true)?;
    check_dir(user, &data_dir.join("workers"), true)?;
    for program in programs {
        check_program(user, program)?;
    }
    Ok(())
}

/// The folders above `p`, outermost first.
fn outer_first(p: &Path) -> impl Iterator<Item = &Path> {
    let mut up: Vec<&Path> = p.ancestors().skip(1).collect();
    up.reverse();
    up.into_iter()
}

/// `p` with symbolic links resolved if it exists, else made absolute.
fn absolute(p: &Path) -> Result<PathBuf, WorkerUserError> {
    fs::canonicalize(p)
        .or_else(|_| std::path::absolute(p))
        .map_err(|source| WorkerUserError::Inspect {
            path: p.to_path_buf(),
            source,
        })
}

/// May `user` pass through `dir`? A folder that does not exist yet is created by `serve`
/// (0755 under the usual umask for parents), so it is not in the way.
fn check_dir(user: &WorkerUser, dir: &Path, serve_sets_mode: bool) -> Result<(), WorkerUserError> {
    let meta = match fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(WorkerUserError::Inspect {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let ours = meta.uid() == nix::unistd::geteuid().as_raw() && meta.mode() & 0o1000 == 0;
    if (serve_sets_mode && ours) || allows(user, &meta, EXEC) {
        return Ok(());
    }
    Err(WorkerUserError::CannotTraverse {
        user: user.describe(),
        dir: dir.to_path_buf(),
        mode: meta.mode() & 0o7777,
        owner: meta.uid(),
        group: meta.gid(),
    })
}

/// May `user` execute `program`, reached through the path as given and the one it resolves to?
fn check_program(user: &WorkerUser, program: &Path) -> Result<(), WorkerUserError> {
    let program = std::path::absolute(program).map_err(|source| WorkerUserError::Inspect {
        path: program.to_path_buf(),
        source,
    })?;
    let real = fs::canonicalize(&program).map_err(|source| WorkerUserError::Inspect {
        path: program.clone(),
        source,
    })?;
    for dir in outer_first(&program).chain(outer_first(&real)) {
        check_dir(user, dir, false).map_err(|e| match e {
            WorkerUserError::CannotTraverse {
                user,
                dir,
                mode,
                owner,
                group,
            } => WorkerUserError::ProgramUnreachable {
                user,
                program: program.clone(),
                dir,
                mode,
                owner,
                group,
            },
            other => other,
        })?;
    }
    let meta = fs::metadata(&real).map_err(|source| WorkerUserError::Inspect {
        path: real.clone(),
        source,
    })?;
    if allows(user, &meta, EXEC) && (meta.mode() & 0o111 != 0) {
        return Ok(());
    }
    Err(WorkerUserError::CannotExecute {
        user: user.describe(),
        program: real,
        mode: meta.mode() & 0o7777,
        owner: meta.uid(),
        group: meta.gid(),
    })
}

/// The execute/search permission bit, in the "other" position.
const EXEC: u32 = 0o1;

/// Whether the mode bits grant `perm` (in the "other" position: 4 read, 2 write, 1 execute)
/// to `user`, as the kernel decides it: the owner's bits if it owns the file, else the
/// group's bits if the file has its group, else the others' bits.
pub(crate) fn allows(user: &WorkerUser, meta: &fs::Metadata, perm: u32) -> bool {
    let mode = meta.mode();
    let bits = if meta.uid() == user.uid {
        mode >> 6
    } else if meta.gid() == user.gid {
        mode >> 3
    } else {
        mode
    };
    bits & perm == perm
}

#[cfg(test)]
#[path = "user_tests.rs"]
mod tests;
