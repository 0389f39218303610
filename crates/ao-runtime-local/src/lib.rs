//! The local process runtime: the embedded default, which runs each task's worker as a
//! process on this machine, so the orchestrator works on a laptop with nothing installed.
//!
//! Layout: every task gets `<root>/<task-id>/` holding its `workspace/`, a private `home/`
//! and `tmp/`, the task spec (`task.json`), the worker's combined output (`output.log`) and,
//! once it ends, `exit.json`. Folders are 0700 and files 0600. With `run_as` (a separate
//! worker user) the root is 0711, so a worker can reach its own folder (which it owns while it
//! runs) without listing the others, and a finished task's folder is handed back to the
//! orchestrator's user, so later workers cannot read it.
//!
//! Each worker runs under a small supervisor (`agent-orchestrator supervise`, see
//! [`supervise`]) that leads its own process group, writes the worker's output to the log
//! file and its exit status to `exit.json`. Because nothing ties the worker to the
//! orchestrator's pipes, a worker survives an orchestrator crash; the next orchestrator finds
//! it by its pid file, waits for it with a pidfd, and resumes storing its output where the
//! store left off. Output is read as it is written (an inotify watch on the task folder) and
//! handed to core's [`ao_core::output`] pipeline, which stores it and reports the exit last.

mod env;
mod nofollow;
mod process;
mod supervise;
mod tail;
mod user;
mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use ao_core::output::{OutputConfig, OutputPipeline};
use ao_core::runtime::{Adoption, EventSender, LaunchSpec, Runtime, RuntimeError};
use ao_core::store::TaskStore;
use ao_core::task::{Task, TaskId, WorkerRef};
use async_trait::async_trait;
use tracing::{info, warn};

pub use env::DEFAULT_PASS_ENV;
pub use supervise::{ExitRecord, supervise};
pub use user::{WorkerUser, WorkerUserError, check_access, check_worker_user, resolve_worker_user};

/// Settings of the local runtime.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Directory under which each task gets its own folder.
    pub root: PathBuf,
    /// The worker program and its arguments.
    pub worker_command: Vec<String>,
    /// The binary that provides the `supervise` subcommand (normally this executable).
    pub supervisor: PathBuf,
    /// Names of orchestrator environment variables passed through to workers.
    pub pass_env: Vec<String>,
    /// Fixed variables set for every worker.
    pub extra_env: Vec<(String, String)>,
    /// Run workers as this user and group (uid, gid) instead of the orchestrator's own.
    pub run_as: Option<(u32, u32)>,
}

/// A worker the runtime is following.
struct Handle {
    pid: i32,
}

type Workers = Arc<Mutex<HashMap<TaskId, Handle>>>;

/// Take a lock even if a panic elsewhere poisoned it: the maps it guards change by one insert
/// or remove at a time, so they stay consistent, and the scheduler must not go down with them.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct LocalRuntime {
    cfg: LocalConfig,
    output: OutputPipeline,
    workers: Workers,
    /// Set up on first use (it needs the Tokio runtime); `None` when inotify is unavailable,
    /// and output is then polled.
    watcher: OnceLock<Option<Arc<watch::DirWatcher>>>,
}

impl LocalRuntime {
    pub fn new(
        cfg: LocalConfig,
        store: Arc<dyn TaskStore>,
        events: EventSender,
    ) -> std::io::Result<Self> {
        process::prepare_root(&cfg.root, cfg.run_as.is_some())?;
        Ok(LocalRuntime {
            cfg,
            output: OutputPipeline::new(store, events, OutputConfig::default()),
            workers: Arc::new(Mutex::new(HashMap::new())),
            watcher: OnceLock::new(),
        })
    }

    fn task_dir(&self, id: TaskId) -> PathBuf {
        self.cfg.root.join(id.to_string())
    }

    fn worker_ref(pid: i32) -> WorkerRef {
        WorkerRef {
            runtime: "local".into(),
            name: format!("pid-{pid}"),
        }
    }

    fn pid_of(&self, id: TaskId) -> Option<i32> {
        if let Some(h) = lock(&self.workers).get(&id) {
            return Some(h.pid);
        }
        process::live_supervisor(&self.task_dir(id))
    }

    /// A watch on the task folder, so output is read as it is written.
    fn subscribe(&self, id: TaskId, dir: &Path) -> Option<watch::Subscription> {
        let watcher = self
            .watcher
            .get_or_init(|| match watch::DirWatcher::start() {
                Ok(w) => Some(w),
                Err(e) => {
                    warn!(error = %e, "inotify is unavailable; worker output is polled");
                    None
                }
            });
        match watcher.as_ref()?.subscribe(dir) {
            Ok(s) => Some(s),
            Err(e) => {
                warn!(task_id = %id, error = %e, "cannot watch the task folder; its output is polled");
                None
            }
        }
    }

    /// Follow a worker until it ends: hand its output to the pipeline as it is written, then
    /// report the exit through it (after the output is stored).
    fn follow(&self, id: TaskId, pid: i32, dir: &Path, waiter: process::Waiter) {
        lock(&self.workers).insert(id, Handle { pid });
        let output = self.output.open(id);
        let changes = self.subscribe(id, dir);
        let workers = self.workers.clone();
        let dir = dir.to_path_buf();
        let run_as = self.cfg.run_as;
        let span = tracing::info_span!("local_worker", task_id = %id, pid);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let (done_tx, done_rx) = tokio::sync::watch::channel(false);
                let log = dir.join("output.log");
                let reading = tail::tail(&log, &output, changes, done_rx);
                let waiting = async {
                    let status = waiter.wait().await;
                    let _ = done_tx.send(true);
                    status
                };
                let ((), status) = tokio::join!(reading, waiting);
                let exit = process::exit_info(&dir, status);
                process::seal(&dir, run_as);
                info!(task_id = %id, code = ?exit.code, signal = ?exit.signal, "worker exited");
                lock(&workers).remove(&id);
                if let Err(e) = output.exited(exit).await {
                    warn!(task_id = %id, error = %e, "the worker's output is incomplete");
                }
                // Right after the exit is reported, not in its way.
                process::remove_scratch(&dir).await;
            },
            span,
        ));
    }
}

#[async_trait]
impl Runtime for LocalRuntime {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn launch(&self, spec: LaunchSpec) -> Result<WorkerRef, RuntimeError> {
        let id = spec.task.id;
        let dir = self.task_dir(id);
        if let Some(pid) = self.pid_of(id) {
            return Ok(Self::worker_ref(pid));
        }
        process::prepare_dir(&dir, &spec.task, self.cfg.run_as)
            .map_err(|e| RuntimeError::launch(format!("preparing the task directory: {e}")))?;
        let env = env::worker_env(&self.cfg, &spec, &dir);
        let child = process::spawn(&self.cfg, &dir, env)
            .map_err(|e| RuntimeError::launch(format!("starting the worker: {e}")))?;
        let pid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| RuntimeError::Launch("worker exited at once".into()))?;
        self.follow(id, pid, &dir, process::Waiter::Child(child));
        Ok(Self::worker_ref(pid))
    }

    async fn stop(&self, task_id: TaskId, grace: Duration) -> Result<(), RuntimeError> {
        let Some(pid) = self.pid_of(task_id) else {
            return Ok(()); // already gone; its exit event is on the way
        };
        process::terminate_group(pid, grace);
        Ok(())
    }

    async fn adopt(&self, task: &Task) -> Result<Adoption, RuntimeError> {
        let dir = self.task_dir(task.id);
        if let Some(pid) = process::live_supervisor(&dir) {
            match process::Waiter::adopt(pid) {
                Ok(waiter) => {
                    self.follow(task.id, pid, &dir, waiter);
                    return Ok(Adoption::Alive(Self::worker_ref(pid)));
                }
                Err(e) => {
                    warn!(task_id = %task.id, error = %e, "could not watch the surviving worker; treating as exited")
                }
            }
        }
        match process::read_exit(&dir) {
            Some(rec) => {
                // Store the output it wrote while nobody watched.
                let output = self.output.open(task.id);
                let (_tx, rx) = tokio::sync::watch::channel(true);
                tail::tail(&dir.join("output.log"), &output, None, rx).await;
                if let Err(e) = output.finish().await {
                    warn!(task_id = %task.id, error = %e, "the worker's output is incomplete");
                }
                process::remove_scratch(&dir).await;
                process::seal(&dir, self.cfg.run_as);
                Ok(Adoption::Exited(rec.into()))
            }
            None => Ok(Adoption::NotFound),
        }
    }

    async fn workers(&self) -> Result<Vec<TaskId>, RuntimeError> {
        let entries = std::fs::read_dir(&self.cfg.root).map_err(RuntimeError::other)?;
        Ok(entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect())
    }

    async fn cleanup(&self, task_id: TaskId) -> Result<(), RuntimeError> {
        if let Some(pid) = self.pid_of(task_id) {
            process::terminate_group(pid, Duration::ZERO);
        }
        let dir = self.task_dir(task_id);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::other(format!(
                "removing {}: {e}",
                dir.display()
            ))),
        }
    }
}

#[cfg(test)]
mod tests;
