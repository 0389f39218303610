//! Batched admission on a real server: the queue bound and idempotency keys hold across
//! batches, within a batch and across two stores ("replicas") admitting into one database,
//! and a follower on one replica wakes for every task another creates. Stores use small
//! batches here so that a few hundred creates span many of them. Waits are bounded by a
//! timeout that only fails the test; nothing sleeps for timing.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ao_core::lifecycle::TaskStatus;
use ao_core::store::conformance::{count_of, new_task};
use ao_core::store::{Created, StoreError, StoreResult, TaskStore};
use ao_core::task::{NewTask, TaskId};
use ao_store_postgres::{PgOptions, PgStore};
use ao_testkit::postgres::{TestDatabase, fresh_database};
use tokio::sync::Barrier;

const WAIT: Duration = Duration::from_secs(20);

async fn open(db: &TestDatabase, batch: usize) -> PgStore {
    let options = PgOptions {
        admission_batch: batch,
        ..PgOptions::default()
    };
    PgStore::connect(db.url(), options)
        .await
        .expect("connect to the test database")
}

/// Create every task at once, the `i`-th through `stores[i % stores.len()]` under `bound`;
/// results in task order.
async fn race(stores: &[PgStore], tasks: Vec<NewTask>, bound: usize) -> Vec<StoreResult<Created>> {
    let barrier = Arc::new(Barrier::new(tasks.len()));
    let handles: Vec<_> = tasks
        .into_iter()
        .enumerate()
        .map(|(i, task)| {
            let store = stores[i % stores.len()].clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store.create(task, bound).await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("creator panicked"));
    }
    out
}

async fn rows(store: &PgStore, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(store.pool())
        .await
        .expect(sql)
}

/// Exactly `bound` of `n` racing creates are admitted, through `stores`, and the rows agree.
async fn check_bound(stores: &[PgStore], n: usize, bound: usize) {
    let tasks = (0..n)
        .map(|i| new_task(&format!("t{i}"), &[], None))
        .collect();
    let mut admitted = 0;
    for r in race(stores, tasks, bound).await {
        match r {
            Ok(Created::New(_)) => admitted += 1,
            Err(StoreError::QueueFull { limit }) if limit == bound => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(admitted, bound, "exactly the bound is admitted");
    let s = &stores[0];
    assert_eq!(count_of(s, TaskStatus::Queued).await, bound as u64);
    assert_eq!(rows(s, "SELECT count(*) FROM tasks").await, bound as i64);
    let history: &'static str = "SELECT count(*) FROM task_transitions WHERE to_status = 'queued'";
    assert_eq!(rows(s, history).await, bound as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_creates_admit_exactly_the_bound_across_batches() {
    let db = fresh_database().await;
    let store = open(&db, 16).await;
    check_bound(std::slice::from_ref(&store), 200, 50).await;
    let stats = store.admission_stats();
    assert_eq!(stats.tasks, 200);
    assert!(
        stats.batches >= 200 / 16,
        "batches of at most 16: {stats:?}"
    );
    assert!(stats.largest <= 16, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_admitting_together_respect_the_bound() {
    let db = fresh_database().await;
    let (a, b) = (open(&db, 16).await, open(&db, 16).await);
    check_bound(&[a.clone(), b.clone()], 200, 50).await;
    assert_eq!(a.admission_stats().tasks + b.admission_stats().tasks, 200);
}

/// `n` creates over `keys` idempotency keys; a third of each key's creates have another body.
fn keyed(n: usize, keys: usize) -> Vec<NewTask> {
    (0..n)
        .map(|i| {
            let k = i % keys;
            let body = if (i / keys) % 3 == 2 { "other" } else { "same" };
            new_task(&format!("{body}-{k}"), &[], Some(&format!("key-{k}")))
        })
        .collect()
}

/// One task per key: every success with a key is that task, conflicts only for other bodies.
async fn check_keys(stores: &[PgStore], n: usize, keys: usize) {
    let tasks = keyed(n, keys);
    let hashes: Vec<String> = tasks.iter().map(|t| t.request_hash.clone()).collect();
    let results = race(stores, tasks, 10_000).await;
    let mut by_key: BTreeMap<String, BTreeSet<TaskId>> = BTreeMap::new();
    for (r, hash) in results.into_iter().zip(hashes) {
        match r {
            Ok(Created::New(t)) | Ok(Created::Existing(t)) => {
                assert_eq!(t.request_hash, hash, "a success for another body");
                by_key
                    .entry(t.idempotency_key.unwrap())
                    .or_default()
                    .insert(t.id);
            }
            Err(StoreError::IdempotencyConflict) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(by_key.len(), keys, "every key made a task");
    assert!(
        by_key.values().all(|ids| ids.len() == 1),
        "one task per key"
    );
    let s = &stores[0];
    assert_eq!(rows(s, "SELECT count(*) FROM tasks").await, keys as i64);
    assert_eq!(count_of(s, TaskStatus::Queued).await, keys as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_creates_sharing_keys_make_one_task_per_key() {
    let db = fresh_database().await;
    let store = open(&db, 32).await;
    check_keys(std::slice::from_ref(&store), 240, 12).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_sharing_keys_make_one_task_per_key() {
    let db = fresh_database().await;
    let (a, b) = (open(&db, 32).await, open(&db, 32).await);
    check_keys(&[a, b], 240, 12).await;
}

async fn woken<F: Future<Output = ()>>(what: &str, f: F) {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no wake-up within {WAIT:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_on_another_replica_wakes_for_every_created_task() {
    let db = fresh_database().await;
    // Batches large enough to need more than one notification payload.
    let (a, b) = (open(&db, 256).await, open(&db, 256).await);
    let tasks: Vec<NewTask> = (0..250)
        .map(|i| new_task(&format!("w{i}"), &[], None))
        .collect();
    let mut subs: Vec<_> = tasks.iter().map(|t| a.subscribe(t.id)).collect();
    let mut list = a.subscribe_list();
    for r in race(std::slice::from_ref(&b), tasks, 10_000).await {
        assert!(matches!(r, Ok(Created::New(_))), "{r:?}");
    }
    woken("the list on a", list.changed()).await;
    for sub in &mut subs {
        let id = sub.task_id();
        woken(&format!("task {id} on a"), sub.changed()).await;
    }
    assert!(b.admission_stats().largest > 1, "the creates were batched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_the_database_refuses_fails_alone() {
    let db = fresh_database().await;
    let store = open(&db, 64).await;
    // jsonb refuses U+0000; the other creates of its batch must not fail with it.
    let tasks: Vec<NewTask> = (0..40)
        .map(|i| {
            new_task(
                &format!("p{i}{}", if i == 7 { "\0" } else { "" }),
                &[],
                None,
            )
        })
        .collect();
    let results = race(std::slice::from_ref(&store), tasks, 10_000).await;
    for (i, r) in results.into_iter().enumerate() {
        match (i, r) {
            (7, Err(StoreError::Backend(_))) => {}
            (7, other) => panic!("a NUL prompt was stored: {other:?}"),
            (_, Ok(Created::New(_))) => {}
            (i, other) => panic!("create {i}: {other:?}"),
        }
    }
    assert_eq!(rows(&store, "SELECT count(*) FROM tasks").await, 39);
}
