//! A scheduler over a real store and a fake runtime, stepped by hand, with a manual clock:
//! tests pass deadlines and backoffs by advancing the clock, never by sleeping. The fake can
//! hang inside `launch`, so a test can drop the scheduler at exactly the point a crash would
//! stop it, and it answers `adopt` as a restarted runtime would.

#![allow(dead_code)] // Each test binary that includes this uses a different part.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ao_core::clock::ManualClock;
use ao_core::metrics::TaskMetrics;
use ao_core::runtime::{
    Adoption, EventSender, ExitInfo, LaunchSpec, Runtime, RuntimeError, RuntimeEvent,
};
use ao_core::scheduler::{Scheduler, SchedulerConfig};
use ao_core::store::{Created, TaskStore};
use ao_core::task::{NewTask, Task, TaskId, TaskSpec, WorkerRef};
use ao_core::{Reason, TaskStatus};
use ao_store_sqlite::SqliteStore;
use tokio::sync::Notify;

#[derive(Default)]
pub struct Fake {
    pub launched: Mutex<Vec<TaskId>>,
    pub stopped: Mutex<Vec<TaskId>>,
    pub unavailable: Mutex<bool>,
    /// `launch` of these tasks is refused as unavailable (throttled), whatever `unavailable` says.
    pub refuse: Mutex<Vec<TaskId>>,
    /// Every launch attempt, refused or not, in order.
    pub attempts: Mutex<Vec<TaskId>>,
    /// `launch` records the launch, wakes `launch_entered`, then never returns.
    pub hang_in_launch: Mutex<bool>,
    pub launch_entered: Notify,
    /// `launch` of these tasks records the launch, then waits for `release.notify_waiters()`
    /// (a slow launch, such as one throttled by the API server).
    pub hold_launch_of: Mutex<Vec<TaskId>>,
    pub release: Notify,
    /// How `adopt` answers after a restart; tasks not listed are `NotFound`.
    pub after_restart: Mutex<BTreeMap<TaskId, AfterRestart>>,
}

#[derive(Debug, Clone)]
pub enum AfterRestart {
    Alive,
    Exited(i32),
    /// The runtime can't be asked.
    Fails,
}

impl Fake {
    pub fn after_restart(&self, id: TaskId, what: AfterRestart) {
        self.after_restart.lock().unwrap().insert(id, what);
    }
}

pub struct FakeRuntime(pub Arc<Fake>);

fn worker(id: TaskId) -> WorkerRef {
    WorkerRef {
        runtime: "fake".into(),
        name: id.to_string(),
    }
}

#[async_trait::async_trait]
impl Runtime for FakeRuntime {
    fn name(&self) -> &'static str {
        "fake"
    }
    async fn launch(&self, spec: LaunchSpec) -> Result<WorkerRef, RuntimeError> {
        self.0.attempts.lock().unwrap().push(spec.task.id);
        if self.0.refuse.lock().unwrap().contains(&spec.task.id) {
            return Err(RuntimeError::Throttled("429 Too Many Requests".into()));
        }
        if *self.0.unavailable.lock().unwrap() {
            return Err(RuntimeError::Unavailable("api down".into()));
        }
        assert!(
            spec.callback.is_some(),
            "a callback token is handed to every worker"
        );
        self.0.launched.lock().unwrap().push(spec.task.id);
        if *self.0.hang_in_launch.lock().unwrap() {
            self.0.launch_entered.notify_one();
            std::future::pending::<()>().await;
        }
        let hold = self
            .0
            .hold_launch_of
            .lock()
            .unwrap()
            .contains(&spec.task.id);
        if hold {
            self.0.release.notified().await;
            // A held launch may end refused (the task was put in `refuse` meanwhile).
            if self.0.refuse.lock().unwrap().contains(&spec.task.id) {
                return Err(RuntimeError::Throttled("429 Too Many Requests".into()));
            }
        }
        Ok(worker(spec.task.id))
    }
    async fn stop(&self, task_id: TaskId, _grace: Duration) -> Result<(), RuntimeError> {
        self.0.stopped.lock().unwrap().push(task_id);
        Ok(())
    }
    async fn adopt(&self, task: &Task) -> Result<Adoption, RuntimeError> {
        let what = self.0.after_restart.lock().unwrap().get(&task.id).cloned();
        match what {
            None => Ok(Adoption::NotFound),
            Some(AfterRestart::Alive) => Ok(Adoption::Alive(worker(task.id))),
            Some(AfterRestart::Exited(code)) => Ok(Adoption::Exited(ExitInfo {
                code: Some(code),
                ..Default::default()
            })),
            Some(AfterRestart::Fails) => Err(RuntimeError::Other("runtime api down".into())),
        }
    }
    async fn workers(&self) -> Result<Vec<TaskId>, RuntimeError> {
        Ok(vec![])
    }
    async fn cleanup(&self, _task_id: TaskId) -> Result<(), RuntimeError> {
        Ok(())
    }
}

pub struct Harness {
    pub store: Arc<SqliteStore>,
    pub fake: Arc<Fake>,
    pub clock: ManualClock,
    /// The metrics of the scheduler made last.
    pub metrics: Option<TaskMetrics>,
    pub tx: EventSender,
    _dir: tempfile::TempDir,
}

impl Harness {
    pub async fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        Harness {
            store,
            fake: Arc::new(Fake::default()),
            clock: ManualClock::new(),
            metrics: None,
            tx,
            _dir: dir,
        }
    }

    /// A new scheduler over the same store and runtime, as after a restart.
    pub fn scheduler(&mut self, max: usize) -> Scheduler {
        self.scheduler_with(max, SchedulerConfig::default().launch_concurrency)
    }

    /// A scheduler that keeps at most `launches` launches in flight at once.
    pub fn scheduler_with(&mut self, max: usize, launches: usize) -> Scheduler {
        self.scheduler_cfg(SchedulerConfig {
            max_concurrency: max,
            launch_concurrency: launches,
            ..Self::config()
        })
    }

    /// The harness's settings: a callback, short stop times.
    pub fn config() -> SchedulerConfig {
        SchedulerConfig {
            callback_url: Some("http://cb".into()),
            stop_timeout: Duration::from_millis(200),
            stop_grace: Duration::from_millis(100),
            ..Default::default()
        }
    }

    /// A scheduler with these settings.
    pub fn scheduler_cfg(&mut self, cfg: SchedulerConfig) -> Scheduler {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.tx = tx;
        let mut reg = prometheus_client::registry::Registry::default();
        let metrics = TaskMetrics::register(&mut reg);
        self.metrics = Some(metrics.clone());
        Scheduler::new(
            self.store.clone(),
            Arc::new(FakeRuntime(self.fake.clone())),
            rx,
            cfg,
            metrics,
        )
        .with_clock(Arc::new(self.clock.clone()))
    }

    pub async fn submit(&self, timeout: u64) -> TaskId {
        let spec = TaskSpec {
            prompt: "p".into(),
            repository: None,
            model: None,
            max_turns: None,
            timeout_seconds: timeout,
            max_budget_usd: None,
            labels: BTreeMap::new(),
            env: BTreeMap::new(),
        };
        let new = NewTask {
            id: TaskId::new(),
            spec,
            idempotency_key: None,
            request_hash: String::new(),
            created_at: chrono::Utc::now(),
        };
        match self.store.create(new, 100).await.unwrap() {
            Created::New(t) => t.id,
            Created::Existing(_) => unreachable!(),
        }
    }

    pub async fn task(&self, id: TaskId) -> Task {
        self.store.get(id).await.unwrap().unwrap()
    }

    pub async fn status(&self, id: TaskId) -> (TaskStatus, Reason) {
        let t = self.task(id).await;
        (t.status, t.reason)
    }

    /// The reasons of the task's history, oldest first.
    pub async fn reasons(&self, id: TaskId) -> Vec<String> {
        let h = self.store.history(id).await.unwrap();
        h.iter().map(|r| r.reason.to_string()).collect()
    }

    pub fn set_aside_gauge(&self) -> i64 {
        self.metrics.as_ref().unwrap().recovery_set_aside.get()
    }

    pub fn exit(&self, id: TaskId, code: i32) {
        self.tx
            .send(RuntimeEvent::Exited {
                task_id: id,
                exit: ExitInfo {
                    code: Some(code),
                    ..Default::default()
                },
            })
            .unwrap();
    }
}
