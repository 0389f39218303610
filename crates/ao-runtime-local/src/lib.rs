//! The local process runtime: the embedded default, which runs each task's worker as a
//! process on this machine, so the orchestrator works on a laptop with nothing installed.
//!
//! Layout: every task gets `<root>/<task-id>/` holding its `workspace/`, a private `home/`
//! and `tmp/`, the task spec (`task.json`, mode 0600), the worker's combined output
//! (`output.log`) and, once it ends, `exit.json`.
//!
//! Each worker runs under a small supervisor (`agent-orchestrator supervise`, see
//! [`supervise`]) that leads its own process group, writes the worker's output to the log
//! file and its exit status to `exit.json`. Because nothing ties the worker to the
//! orchestrator's pipes, a worker survives an orchestrator crash; the next orchestrator finds
//! it by its pid file, waits for it with a pidfd, and resumes storing its output where the
//! store left off.

mod env;
mod process;
mod supervise;
mod tail;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ao_core::runtime::{Adoption, EventSender, LaunchSpec, Runtime, RuntimeError};
use ao_core::store::TaskStore;
use ao_core::task::{Task, TaskId, WorkerRef};
use async_trait::async_trait;
use tracing::{info, warn};

pub use env::DEFAULT_PASS_ENV;
pub use supervise::{ExitRecord, supervise};

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

pub struct LocalRuntime {
    cfg: LocalConfig,
    store: Arc<dyn TaskStore>,
    events: EventSender,
    workers: Arc<Mutex<HashMap<TaskId, Handle>>>,
}

impl LocalRuntime {
    pub fn new(
        cfg: LocalConfig,
        store: Arc<dyn TaskStore>,
        events: EventSender,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(&cfg.root)?;
        Ok(LocalRuntime {
            cfg,
            store,
            events,
            workers: Arc::new(Mutex::new(HashMap::new())),
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
        if let Some(h) = self.workers.lock().expect("workers lock").get(&id) {
            return Some(h.pid);
        }
        process::live_supervisor(&self.task_dir(id))
    }

    /// Follow a worker until it ends: tail its output into the store, then report the exit.
    fn follow(&self, id: TaskId, pid: i32, dir: &Path, waiter: process::Waiter) {
        self.workers
            .lock()
            .expect("workers lock")
            .insert(id, Handle { pid });
        let store = self.store.clone();
        let events = self.events.clone();
        let workers = self.workers.clone();
        let dir = dir.to_path_buf();
        let span = tracing::info_span!("local_worker", task_id = %id, pid);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let (done_tx, done_rx) = tokio::sync::watch::channel(false);
                let tailer = tokio::spawn(tail::tail(store, id, dir.join("output.log"), done_rx));
                let status = waiter.wait().await;
                let _ = done_tx.send(true);
                if let Err(e) = tailer.await {
                    warn!(task_id = %id, error = %e, "output tailer failed");
                }
                let exit = process::exit_info(&dir, status);
                process::remove_scratch(&dir).await;
                info!(task_id = %id, code = ?exit.code, signal = ?exit.signal, "worker exited");
                workers.lock().expect("workers lock").remove(&id);
                let _ = events.send(ao_core::runtime::RuntimeEvent::Exited { task_id: id, exit });
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
                let (_tx, rx) = tokio::sync::watch::channel(true);
                tail::tail(self.store.clone(), task.id, dir.join("output.log"), rx).await;
                process::remove_scratch(&dir).await;
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
