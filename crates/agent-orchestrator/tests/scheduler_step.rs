//! The scheduler driven one step at a time, against a fake runtime and a real store.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ao_core::metrics::TaskMetrics;
use ao_core::runtime::{
    Adoption, EventSender, ExitInfo, LaunchSpec, Runtime, RuntimeError, RuntimeEvent,
};
use ao_core::scheduler::{Scheduler, SchedulerConfig};
use ao_core::store::{Created, TaskStore};
use ao_core::task::{NewTask, Task, TaskId, TaskSpec, WorkerRef};
use ao_core::{Reason, TaskStatus};
use ao_store_sqlite::SqliteStore;

#[derive(Default)]
struct Fake {
    launched: Mutex<Vec<TaskId>>,
    stopped: Mutex<Vec<TaskId>>,
    unavailable: Mutex<bool>,
    alive_after_restart: Mutex<Vec<TaskId>>,
}

struct FakeRuntime(Arc<Fake>);

#[async_trait::async_trait]
impl Runtime for FakeRuntime {
    fn name(&self) -> &'static str {
        "fake"
    }
    async fn launch(&self, spec: LaunchSpec) -> Result<WorkerRef, RuntimeError> {
        if *self.0.unavailable.lock().unwrap() {
            return Err(RuntimeError::Unavailable("api down".into()));
        }
        assert!(
            spec.callback.is_some(),
            "a callback token is handed to every worker"
        );
        self.0.launched.lock().unwrap().push(spec.task.id);
        Ok(WorkerRef {
            runtime: "fake".into(),
            name: spec.task.id.to_string(),
        })
    }
    async fn stop(&self, task_id: TaskId, _grace: Duration) -> Result<(), RuntimeError> {
        self.0.stopped.lock().unwrap().push(task_id);
        Ok(())
    }
    async fn adopt(&self, task: &Task) -> Result<Adoption, RuntimeError> {
        Ok(
            if self
                .0
                .alive_after_restart
                .lock()
                .unwrap()
                .contains(&task.id)
            {
                Adoption::Alive(WorkerRef {
                    runtime: "fake".into(),
                    name: task.id.to_string(),
                })
            } else {
                Adoption::NotFound
            },
        )
    }
    async fn workers(&self) -> Result<Vec<TaskId>, RuntimeError> {
        Ok(vec![])
    }
    async fn cleanup(&self, _task_id: TaskId) -> Result<(), RuntimeError> {
        Ok(())
    }
}

struct Harness {
    store: Arc<SqliteStore>,
    fake: Arc<Fake>,
    tx: EventSender,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        Harness {
            store,
            fake: Arc::new(Fake::default()),
            tx,
            _dir: dir,
        }
    }

    fn scheduler(&mut self, max: usize) -> Scheduler {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.tx = tx;
        let cfg = SchedulerConfig {
            max_concurrency: max,
            callback_url: Some("http://cb".into()),
            stop_timeout: Duration::from_millis(200),
            stop_grace: Duration::from_millis(100),
            ..Default::default()
        };
        let mut reg = prometheus_client::registry::Registry::default();
        Scheduler::new(
            self.store.clone(),
            Arc::new(FakeRuntime(self.fake.clone())),
            rx,
            cfg,
            TaskMetrics::register(&mut reg),
        )
    }

    async fn submit(&self, timeout: u64) -> TaskId {
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

    async fn status(&self, id: TaskId) -> (TaskStatus, Reason) {
        let t = self.store.get(id).await.unwrap().unwrap();
        (t.status, t.reason)
    }

    fn exit(&self, id: TaskId, code: i32) {
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

#[tokio::test]
async fn steps_admit_fifo_under_the_limit_and_finish_on_exit() {
    let mut h = Harness::new().await;
    let mut s = h.scheduler(2);
    let ids = [h.submit(60).await, h.submit(60).await, h.submit(60).await];
    let r = s.tick().await.unwrap();
    assert_eq!(r.launched, ids[..2]);
    assert_eq!(h.status(ids[2]).await.0, TaskStatus::Queued);
    assert!(
        s.tick().await.unwrap().launched.is_empty(),
        "the limit holds"
    );
    h.exit(ids[0], 0);
    h.exit(ids[1], 4);
    let r = s.tick().await.unwrap();
    assert_eq!(r.finished, ids[..2]);
    assert_eq!(r.launched, ids[2..]);
    assert_eq!(
        h.status(ids[0]).await,
        (TaskStatus::Succeeded, Reason::Completed)
    );
    assert_eq!(
        h.status(ids[1]).await,
        (TaskStatus::Failed, Reason::ExitCode(4))
    );
}

#[tokio::test]
async fn cancel_and_deadline_stop_the_worker_then_settle() {
    let mut h = Harness::new().await;
    let mut s = h.scheduler(4);
    let cancel = h.submit(60).await;
    let slow = h.submit(1).await;
    s.tick().await.unwrap();
    h.store.request_cancel(cancel).await.unwrap();
    let r = s.tick().await.unwrap();
    assert_eq!(r.stopping, vec![cancel]);
    h.exit(cancel, 143);
    s.tick().await.unwrap();
    assert_eq!(
        h.status(cancel).await,
        (TaskStatus::Cancelled, Reason::CancelledByUser)
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = s.tick().await.unwrap();
    assert_eq!(r.stopping, vec![slow]);
    // The worker never reports its exit: after grace + stop timeout it is settled anyway.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let r = s.tick().await.unwrap();
    assert_eq!(r.finished, vec![slow]);
    assert_eq!(
        h.status(slow).await,
        (TaskStatus::TimedOut, Reason::DeadlineExceeded)
    );
    assert_eq!(*h.fake.stopped.lock().unwrap(), vec![cancel, slow]);
}

#[tokio::test]
async fn unavailable_runtime_requeues_without_losing_tasks() {
    let mut h = Harness::new().await;
    let mut s = h.scheduler(4);
    let id = h.submit(60).await;
    *h.fake.unavailable.lock().unwrap() = true;
    let r = s.tick().await.unwrap();
    assert_eq!(r.requeued, vec![id]);
    assert_eq!(h.status(id).await, (TaskStatus::Queued, Reason::Requeued));
    *h.fake.unavailable.lock().unwrap() = false;
    // Backoff first, then it runs.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(s.tick().await.unwrap().launched, vec![id]);
}

#[tokio::test]
async fn recovery_adopts_live_workers_and_settles_the_rest() {
    let mut h = Harness::new().await;
    let mut s = h.scheduler(4);
    let alive = h.submit(60).await;
    let gone = h.submit(60).await;
    s.tick().await.unwrap();
    let never_started = h.submit(60).await;
    h.store
        .transition(
            never_started,
            TaskStatus::Queued,
            ao_core::store::Transition::new(TaskStatus::Starting, Reason::Scheduled),
        )
        .await
        .unwrap();
    drop(s);
    h.fake.alive_after_restart.lock().unwrap().push(alive);
    let mut s = h.scheduler(4);
    assert_eq!(s.recover().await.unwrap(), 3);
    assert_eq!(h.status(alive).await.0, TaskStatus::Running);
    assert_eq!(
        h.status(gone).await,
        (TaskStatus::Failed, Reason::WorkerLost)
    );
    assert_eq!(
        h.status(never_started).await,
        (TaskStatus::Queued, Reason::Requeued)
    );
    assert_eq!(s.active_count(), 1);
    let r = s.tick().await.unwrap();
    assert_eq!(r.launched, vec![never_started]);
    h.exit(alive, 0);
    s.tick().await.unwrap();
    assert_eq!(h.status(alive).await.0, TaskStatus::Succeeded);
}
