//! A deposed scheduler that has not noticed yet: its writes carry the old lease generation,
//! and the store refuses them, so it neither claims a queued task (no launch follows) nor
//! settles a running one (the new leader adopts it).

use std::sync::Arc;
use std::time::Duration;

use ao_core::TaskStatus;
use ao_core::lease::{LeaseStore, SCHEDULER_LEASE};
use ao_core::metrics::TaskMetrics;
use ao_core::runtime::{ExitInfo, RuntimeEvent};
use ao_core::scheduler::{Scheduler, SchedulerConfig};
use ao_core::store::conformance::{advance, create, new_task};
use ao_core::store::{StoreError, TaskStore};
use ao_store_postgres::{PgOptions, PgStore};

use crate::harness::{Fake, FakeRuntime};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_schedulers_late_writes_are_refused() {
    let db = ao_testkit::postgres::fresh_database().await;
    let store = Arc::new(
        PgStore::connect(db.url(), PgOptions::default())
            .await
            .unwrap(),
    );
    let ttl = Duration::from_secs(60);
    let old = store
        .acquire(SCHEDULER_LEASE, "old", ttl)
        .await
        .unwrap()
        .generation;
    let queued = create(&*store, new_task("queued", &[], None)).await;
    let running = create(&*store, new_task("running", &[], None)).await;
    advance(
        &*store,
        running.id,
        &[TaskStatus::Starting, TaskStatus::Running],
    )
    .await;
    // The lease changes hands while the old leader is paused.
    store.release(SCHEDULER_LEASE, "old", old).await.unwrap();
    let new = store
        .acquire(SCHEDULER_LEASE, "new", ttl)
        .await
        .unwrap()
        .generation;
    assert!(new > old);

    let fake = Arc::new(Fake::default());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut reg = prometheus_client::registry::Registry::default();
    let cfg = SchedulerConfig {
        callback_url: Some("http://cb".into()),
        ..Default::default()
    };
    let tasks: Arc<dyn TaskStore> = store.clone();
    let runtime = Arc::new(FakeRuntime(fake.clone()));
    let mut late = Scheduler::new(
        tasks.clone(),
        runtime.clone(),
        rx,
        cfg.clone(),
        TaskMetrics::register(&mut reg),
    )
    .with_fence(Some(old));
    let claim = late.tick().await;
    assert!(
        matches!(claim, Err(StoreError::Fenced { fence }) if fence == old),
        "{claim:?}"
    );
    assert!(
        fake.attempts.lock().unwrap().is_empty(),
        "no launch after a refused claim"
    );
    assert_eq!(
        store.get(queued.id).await.unwrap().unwrap().status,
        TaskStatus::Queued
    );
    let exit = ExitInfo {
        code: Some(0),
        ..Default::default()
    };
    tx.send(RuntimeEvent::Exited {
        task_id: running.id,
        exit,
    })
    .unwrap();
    let settle = late.tick().await;
    assert!(
        matches!(settle, Err(StoreError::Fenced { fence }) if fence == old),
        "{settle:?}"
    );
    assert_eq!(
        store.get(running.id).await.unwrap().unwrap().status,
        TaskStatus::Running
    );
    assert_eq!(
        store.history(running.id).await.unwrap().len(),
        3,
        "no history row either"
    );

    // The new leader's scheduler launches it.
    let (_tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut current = Scheduler::new(tasks, runtime, rx, cfg, TaskMetrics::register(&mut reg))
        .with_fence(Some(new));
    let report = current.tick().await.unwrap();
    assert_eq!(report.launched, vec![queued.id]);
    assert_eq!(*fake.attempts.lock().unwrap(), vec![queued.id]);
}
