//! Concurrent writes that the writer commits together (group commit) keep the promises the
//! trait makes for writes one at a time: released at once, they mostly land in the same
//! batch, where each create must see the queue slots and idempotency keys taken by the
//! creates before it. Run with one writer (everything in a few batches) and with eight
//! (batches of several connections racing for the lock). The writer's unit tests pin down
//! the single-batch case deterministically.

use std::sync::Arc;

use ao_core::lifecycle::TaskStatus;
use ao_core::store::conformance::{count_of, new_task};
use ao_core::store::{Created, StoreError, TaskStore};
use ao_store_sqlite::{Connections, SqliteStore};
use tempfile::TempDir;
use tokio::sync::Barrier;

async fn open(writers: u32) -> (Arc<SqliteStore>, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let connections = Connections {
        writers,
        ..Connections::default()
    };
    let store = SqliteStore::open_with(&dir.path().join("t.db"), connections)
        .await
        .unwrap();
    (Arc::new(store), dir)
}

/// `n` creates released together; their results in racer order.
async fn creates(
    s: &Arc<SqliteStore>,
    n: usize,
    make: impl Fn(usize) -> (ao_core::task::NewTask, usize),
) -> Vec<Result<Created, StoreError>> {
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (task, bound) = make(i);
            let (s, barrier) = (s.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                s.create(task, bound).await
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

async fn bound_of_ten_admits_ten(writers: u32) {
    let (s, _dir) = open(writers).await;
    let results = creates(&s, 64, |i| (new_task(&format!("p{i}"), &[], None), 10)).await;
    let mut admitted = 0;
    for r in results {
        match r {
            Ok(Created::New(_)) => admitted += 1,
            Err(StoreError::QueueFull { limit: 10 }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(admitted, 10);
    assert_eq!(count_of(&*s, TaskStatus::Queued).await, 10);
    assert_eq!(s.queued(100).await.unwrap().len(), 10);
}

async fn one_key_makes_one_task(writers: u32) {
    let (s, _dir) = open(writers).await;
    for round in 0..20 {
        let key = format!("k{round}");
        let results = creates(&s, 2, |_| (new_task("same", &[], Some(&key)), 1000)).await;
        let ids: Vec<_> = results
            .iter()
            .map(|r| match r {
                Ok(Created::New(t) | Created::Existing(t)) => t.id,
                Err(e) => panic!("round {round}: {e}"),
            })
            .collect();
        assert_eq!(ids[0], ids[1], "round {round}: one task");
        let new = results
            .iter()
            .filter(|r| matches!(r, Ok(Created::New(_))))
            .count();
        assert_eq!(new, 1, "round {round}: one of the two made it");
    }
    assert_eq!(count_of(&*s, TaskStatus::Queued).await, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_creates_under_a_bound_of_ten_admit_ten_one_writer() {
    bound_of_ten_admits_ten(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_creates_under_a_bound_of_ten_admit_ten_many_writers() {
    bound_of_ten_admits_ten(8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_creates_with_one_key_make_one_task_one_writer() {
    one_key_makes_one_task(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_creates_with_one_key_make_one_task_many_writers() {
    one_key_makes_one_task(8).await;
}
