//! The writer's own promises: ops of one batch see each other's effects, a failing op
//! rolls back only itself, a batch that is not committed fails every caller and leaves
//! nothing behind (and the next batch works), a write waiting behind a burst is served in
//! the next batch, and the writer stops with the store.
//!
//! Batches are made deterministic in two ways: by running [`batch::run`] directly on a
//! connection of our own, or by holding SQLite's write lock from another connection while
//! the writer's channel is filled, then letting go. A failing commit and a panicking batch
//! are injected with [`Fault`] ops (SQLite has no quick way to fail either on demand).

use ao_core::Reason;
use ao_core::lifecycle::TaskStatus;
use ao_core::store::conformance::{count_of, new_task};
use ao_core::store::{Created, StoreError, StoreResult, TaskStore, Transition};
use sqlx::{Connection, SqliteConnection};
use tempfile::TempDir;
use tokio::sync::oneshot;

use super::batch::{self, Answer, Job};
use super::op::Fault;
use super::{Done, MAX_OPS, Op};
use crate::SqliteStore;

async fn store() -> (SqliteStore, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
    (store, dir)
}

async fn connection(dir: &TempDir) -> SqliteConnection {
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    SqliteConnection::connect(&url).await.unwrap()
}

fn create(prompt: &str, key: Option<&str>, max_queued: usize) -> Op {
    let task = new_task(prompt, &[], key);
    let spec = serde_json::to_string(&task.spec).unwrap();
    Op::Create {
        task,
        spec,
        max_queued,
    }
}

/// Run `ops` as one batch on `conn`; the callers' results in op order.
async fn run_batch(
    conn: SqliteConnection,
    ops: Vec<Op>,
) -> (SqliteConnection, Vec<StoreResult<Done>>) {
    let (jobs, answers): (Vec<Job>, Vec<_>) = ops
        .into_iter()
        .map(|op| {
            let (reply, answer) = oneshot::channel();
            (Job { op, reply }, answer)
        })
        .unzip();
    let (conn, _) = batch::run(conn, jobs, 1, Default::default()).await;
    let mut results = Vec::new();
    for a in answers {
        results.push(a.await.expect("every caller is answered").result);
    }
    (conn, results)
}

fn is_backend(r: &StoreResult<Done>) -> bool {
    matches!(r, Err(StoreError::Backend(_)))
}

#[tokio::test]
async fn creates_in_one_batch_share_the_queue_bound_and_idempotency_keys() {
    let (s, dir) = store().await;
    let mut ops: Vec<Op> = (0..64)
        .map(|i| create(&format!("p{i}"), None, 10))
        .collect();
    ops.push(create("same", Some("k"), 1000));
    ops.push(create("same", Some("k"), 1000));
    ops.push(create("other", Some("k"), 1000));
    let (_, results) = run_batch(connection(&dir).await, ops).await;
    let mut results = results.into_iter();
    for i in 0..64 {
        match results.next().unwrap() {
            Ok(Done::Created(Created::New(_))) if i < 10 => {}
            Err(StoreError::QueueFull { limit: 10 }) if i >= 10 => {}
            other => panic!("create {i}: {other:?}"),
        }
    }
    let Ok(Done::Created(Created::New(first))) = results.next().unwrap() else {
        panic!("the first keyed create makes the task");
    };
    match results.next().unwrap() {
        Ok(Done::Created(Created::Existing(t))) => assert_eq!(t.id, first.id),
        other => panic!("the repeat: {other:?}"),
    }
    assert!(matches!(
        results.next().unwrap(),
        Err(StoreError::IdempotencyConflict)
    ));
    assert_eq!(count_of(&s, TaskStatus::Queued).await, 11);
    assert_eq!(s.queued(100).await.unwrap().len(), 11);
}

#[tokio::test]
async fn a_failing_op_rolls_back_only_its_own_writes() {
    let (s, dir) = store().await;
    let a = new_task("a", &[("team", "x")], None);
    // The same id again fails on the insert (a constraint, a backend error): its savepoint
    // must leave the counters and the first task as they were.
    let mut twin = new_task("twin", &[], None);
    twin.id = a.id;
    let op = |task: ao_core::task::NewTask| Op::Create {
        spec: serde_json::to_string(&task.spec).unwrap(),
        task,
        max_queued: 1000,
    };
    let moved = Transition::new(TaskStatus::Starting, Reason::Scheduled);
    let ops = vec![
        op(a.clone()),
        op(twin),
        Op::Transition {
            id: a.id,
            from: TaskStatus::Starting,
            t: Transition::new(TaskStatus::Running, Reason::WorkerStarted),
        },
        Op::Transition {
            id: a.id,
            from: TaskStatus::Queued,
            t: moved,
        },
        create("b", None, 1000),
    ];
    let (_, results) = run_batch(connection(&dir).await, ops).await;
    assert!(matches!(results[0], Ok(Done::Created(Created::New(_)))));
    assert!(is_backend(&results[1]), "{:?}", results[1]);
    assert!(matches!(
        results[2],
        Err(StoreError::StatusChanged {
            expected: TaskStatus::Starting,
            actual: TaskStatus::Queued
        })
    ));
    assert!(matches!(results[3], Ok(Done::Task(ref t)) if t.status == TaskStatus::Starting));
    assert!(matches!(results[4], Ok(Done::Created(Created::New(_)))));
    assert_eq!(count_of(&s, TaskStatus::Queued).await, 1, "b only");
    assert_eq!(count_of(&s, TaskStatus::Starting).await, 1, "a");
    assert_eq!(s.get(a.id).await.unwrap().unwrap().spec.prompt, "a");
    assert_eq!(s.history(a.id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_batch_whose_commit_fails_fails_every_caller_and_leaves_nothing() {
    let (s, dir) = store().await;
    let mut list = s.subscribe_list();
    let a = new_task("a", &[], None);
    let a_id = a.id;
    let ops = vec![
        Op::Create {
            spec: serde_json::to_string(&a.spec).unwrap(),
            task: a,
            max_queued: 1000,
        },
        Op::Fault(Fault::FailCommit),
        create("b", None, 1000),
    ];
    let (conn, results) = run_batch(connection(&dir).await, ops).await;
    assert!(results.iter().all(is_backend), "{results:?}");
    assert!(s.get(a_id).await.unwrap().is_none());
    assert_eq!(count_of(&s, TaskStatus::Queued).await, 0);
    assert!(
        !list.has_changed(),
        "no notification for an uncommitted batch"
    );
    // The same connection commits the next batch.
    let (_, results) = run_batch(conn, vec![create("c", None, 1000)]).await;
    let Ok(Done::Created(Created::New(c))) = &results[0] else {
        panic!("{results:?}");
    };
    assert_eq!(s.get(c.id).await.unwrap().unwrap().spec.prompt, "c");
    assert_eq!(count_of(&s, TaskStatus::Queued).await, 1);
    list.mark_seen();
}

/// Holds SQLite's write lock from a connection of its own until released.
struct Lock(SqliteConnection);

impl Lock {
    async fn take(dir: &TempDir) -> Lock {
        let mut conn = connection(dir).await;
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .await
            .unwrap();
        Lock(conn)
    }

    async fn release(mut self) {
        sqlx::raw_sql("COMMIT").execute(&mut self.0).await.unwrap();
    }
}

/// Yield until the store's (single) writer channel holds `n` ops.
async fn until_waiting(s: &SqliteStore, n: usize) {
    while MAX_OPS - s.writer.lanes[0].capacity() != n {
        tokio::task::yield_now().await;
    }
}

type Sent = tokio::task::JoinHandle<StoreResult<(u64, StoreResult<Done>)>>;

/// Send `op` through the store's writer from a task of its own; the answer's batch number
/// and result.
fn send(s: &SqliteStore, op: Op) -> Sent {
    let w = s.writer.clone();
    tokio::spawn(async move {
        let a = w.answer(op).await?;
        Ok((a.batch, a.result))
    })
}

async fn batch_of(sent: Sent) -> u64 {
    let (batch, result) = sent.await.unwrap().expect("answered");
    result.expect("the op succeeds");
    batch
}

/// Start batch 1 (one create) and leave it waiting for the lock, so that what is sent next
/// queues up in the channel. Gives the lock and the create's answer.
async fn stall(s: &SqliteStore, dir: &TempDir) -> (Lock, oneshot::Receiver<Answer>) {
    let lock = Lock::take(dir).await;
    let (reply, answer) = oneshot::channel();
    let op = create("first", None, 100_000);
    s.writer.lanes[0].send(Job { op, reply }).await.unwrap();
    // Sent by us, so the channel is empty again only once the writer has taken it.
    until_waiting(s, 0).await;
    (lock, answer)
}

#[tokio::test]
async fn a_transition_behind_a_burst_of_creates_is_served_in_the_next_batch() {
    let (s, dir) = store().await;
    let t = s.create(new_task("t", &[], None), 1000).await.unwrap();
    let Created::New(t) = t else { panic!("new") };
    let (lock, first) = stall(&s, &dir).await;
    // A burst fills the channel; the transition waits for room, and more creates behind it.
    let burst: Vec<Sent> = (0..MAX_OPS)
        .map(|i| send(&s, create(&format!("b{i}"), None, 100_000)))
        .collect();
    until_waiting(&s, MAX_OPS).await;
    let to = Transition::new(TaskStatus::Starting, Reason::Scheduled);
    let moved = send(
        &s,
        Op::Transition {
            id: t.id,
            from: TaskStatus::Queued,
            t: to,
        },
    );
    tokio::task::yield_now().await;
    let later: Vec<Sent> = (0..64)
        .map(|i| send(&s, create(&format!("l{i}"), None, 100_000)))
        .collect();
    lock.release().await;
    let stalled = first.await.unwrap().batch;
    for b in burst {
        assert_eq!(batch_of(b).await, stalled + 1, "the burst is one batch");
    }
    assert_eq!(
        batch_of(moved).await,
        stalled + 2,
        "the transition is in the batch after the burst"
    );
    for l in later {
        assert!(batch_of(l).await >= stalled + 2);
    }
    let stored = s.get(t.id).await.unwrap().unwrap();
    assert_eq!(stored.status, TaskStatus::Starting);
}

#[tokio::test]
async fn a_panicking_batch_fails_its_callers_and_the_next_batch_works() {
    let (s, dir) = store().await;
    let (lock, first) = stall(&s, &dir).await;
    let a = new_task("a", &[], None);
    let a_id = a.id;
    let doomed = send(
        &s,
        Op::Create {
            spec: serde_json::to_string(&a.spec).unwrap(),
            task: a,
            max_queued: 1000,
        },
    );
    let fault = send(&s, Op::Fault(Fault::Panic));
    until_waiting(&s, 2).await;
    lock.release().await;
    assert_eq!(first.await.unwrap().batch, 1);
    for sent in [doomed, fault] {
        match sent.await.unwrap() {
            Err(StoreError::Backend(_)) => {}
            other => panic!("a caller of the panicking batch got {other:?}"),
        }
    }
    assert!(s.get(a_id).await.unwrap().is_none(), "nothing half-applied");
    let c = s.create(new_task("c", &[], None), 1000).await.unwrap();
    assert!(matches!(c, Created::New(_)));
    assert_eq!(count_of(&s, TaskStatus::Queued).await, 2, "first and c");
    s.ping().await.unwrap();
}

#[tokio::test]
async fn dropping_the_store_stops_the_writer() {
    let (s, _dir) = store().await;
    s.create(new_task("a", &[], None), 1000).await.unwrap();
    let stopped = s.writer.stopped();
    let clone = s.clone();
    drop(s);
    clone.ping().await.unwrap();
    drop(clone);
    tokio::time::timeout(std::time::Duration::from_secs(30), stopped)
        .await
        .expect("the writer stops once the store is dropped");
}
