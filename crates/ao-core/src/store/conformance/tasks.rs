//! Conformance cases for task rows: creation, idempotency, the queue bound, the status
//! compare-and-set, the status counters and cancellation (one caller at a time).

use std::sync::Arc;

use super::{advance, count_of, create, new_task};
use crate::lifecycle::{Reason, TaskStatus};
use crate::store::{Created, StoreError, TaskStore, Transition};
use crate::task::{TaskId, WorkerRef};

pub async fn create_get_and_history(s: Arc<dyn TaskStore>) {
    let t = create(&*s, new_task("p", &[("team", "a")], None)).await;
    assert_eq!(t.status, TaskStatus::Queued);
    assert_eq!(t.reason, Reason::Submitted);
    assert_eq!(t.spec.labels.get("team").map(String::as_str), Some("a"));
    let got = s.get(t.id).await.unwrap().unwrap();
    assert_eq!(got, t);
    let h = s.history(t.id).await.unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!((h[0].from, h[0].to), (None, TaskStatus::Queued));
    assert!(s.get(TaskId::new()).await.unwrap().is_none());
    assert!(s.history(TaskId::new()).await.unwrap().is_empty());
}

pub async fn idempotency_key_returns_same_task_or_conflicts(s: Arc<dyn TaskStore>) {
    let a = create(&*s, new_task("p", &[], Some("k1"))).await;
    match s.create(new_task("p", &[], Some("k1")), 100).await.unwrap() {
        Created::Existing(b) => assert_eq!(a.id, b.id),
        Created::New(_) => panic!("duplicate created"),
    }
    let err = s
        .create(new_task("other", &[], Some("k1")), 100)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IdempotencyConflict), "{err}");
    // A known key answers even when the queue is full.
    match s.create(new_task("p", &[], Some("k1")), 1).await.unwrap() {
        Created::Existing(b) => assert_eq!(a.id, b.id),
        Created::New(_) => panic!("duplicate created"),
    }
    assert_eq!(count_of(&*s, TaskStatus::Queued).await, 1);
}

pub async fn queue_bound_is_enforced(s: Arc<dyn TaskStore>) {
    s.create(new_task("a", &[], None), 2).await.unwrap();
    s.create(new_task("b", &[], None), 2).await.unwrap();
    let refused = new_task("c", &[], None);
    let id = refused.id;
    let err = s.create(refused, 2).await.unwrap_err();
    assert!(matches!(err, StoreError::QueueFull { limit: 2 }), "{err}");
    assert!(
        s.get(id).await.unwrap().is_none(),
        "a refused task is not stored"
    );
    assert_eq!(count_of(&*s, TaskStatus::Queued).await, 2);
    let err = s.create(new_task("d", &[], None), 0).await.unwrap_err();
    assert!(matches!(err, StoreError::QueueFull { limit: 0 }), "{err}");
}

/// The bound counts `queued` only: moving a task out frees a slot, moving it back takes one.
pub async fn queue_bound_counts_only_queued_tasks(s: Arc<dyn TaskStore>) {
    let a = s.create(new_task("a", &[], None), 1).await.unwrap();
    let Created::New(a) = a else { panic!("new") };
    assert!(s.create(new_task("b", &[], None), 1).await.is_err());
    advance(&*s, a.id, &[TaskStatus::Starting]).await;
    let b = s.create(new_task("b", &[], None), 1).await.unwrap();
    let Created::New(b) = b else { panic!("new") };
    advance(&*s, a.id, &[TaskStatus::Queued]).await;
    assert_eq!(count_of(&*s, TaskStatus::Queued).await, 2);
    assert!(s.create(new_task("c", &[], None), 2).await.is_err());
    s.request_cancel(b.id).await.unwrap();
    assert_eq!(count_of(&*s, TaskStatus::Queued).await, 1);
    s.create(new_task("c", &[], None), 2).await.unwrap();
}

pub async fn transitions_are_checked_and_compare_and_set(s: Arc<dyn TaskStore>) {
    let t = create(&*s, new_task("p", &[], None)).await;
    let running = Transition::new(TaskStatus::Running, Reason::WorkerStarted);
    let err = s
        .transition(t.id, TaskStatus::Queued, running)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IllegalTransition(_)), "{err}");
    let scheduled = Transition::new(TaskStatus::Starting, Reason::Scheduled);
    s.transition(t.id, TaskStatus::Queued, scheduled.clone())
        .await
        .unwrap();
    let err = s
        .transition(t.id, TaskStatus::Queued, scheduled.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::StatusChanged {
                expected: TaskStatus::Queued,
                actual: TaskStatus::Starting,
            }
        ),
        "{err}"
    );
    let err = s
        .transition(TaskId::new(), TaskStatus::Queued, scheduled)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err}");
    let w = WorkerRef {
        runtime: "local".into(),
        name: "123".into(),
    };
    let r = s
        .transition(
            t.id,
            TaskStatus::Starting,
            Transition::new(TaskStatus::Running, Reason::WorkerStarted).worker(w.clone()),
        )
        .await
        .unwrap();
    assert!(r.started_at.is_some());
    assert_eq!(r.worker, Some(w));
    let done = s
        .transition(
            t.id,
            TaskStatus::Running,
            Transition::new(TaskStatus::Failed, Reason::ExitCode(2)).exit_code(Some(2)),
        )
        .await
        .unwrap();
    assert_eq!(done.exit_code, Some(2));
    assert_eq!(done.reason, Reason::ExitCode(2));
    assert!(done.finished_at.is_some());
    assert_eq!(s.get(t.id).await.unwrap().unwrap(), done);
    assert_eq!(s.history(t.id).await.unwrap().len(), 4);
}

/// `count_by_status` follows every move, refused ones included (they change nothing).
pub async fn transitions_keep_status_counts(s: Arc<dyn TaskStore>) {
    let ids: Vec<TaskId> = {
        let mut ids = Vec::new();
        for i in 0..4 {
            ids.push(create(&*s, new_task(&format!("p{i}"), &[], None)).await.id);
        }
        ids
    };
    advance(&*s, ids[0], &[TaskStatus::Starting, TaskStatus::Running]).await;
    advance(&*s, ids[1], &[TaskStatus::Starting, TaskStatus::Running]).await;
    advance(&*s, ids[1], &[TaskStatus::Succeeded]).await;
    advance(&*s, ids[2], &[TaskStatus::Starting]).await;
    let stale = Transition::new(TaskStatus::Starting, Reason::Scheduled);
    assert!(
        s.transition(ids[2], TaskStatus::Queued, stale)
            .await
            .is_err()
    );
    let expect = [
        (TaskStatus::Queued, 1),
        (TaskStatus::Starting, 1),
        (TaskStatus::Running, 1),
        (TaskStatus::Succeeded, 1),
        (TaskStatus::Failed, 0),
    ];
    for (status, n) in expect {
        assert_eq!(count_of(&*s, status).await, n, "{status}");
    }
    let queued = s.queued(10).await.unwrap();
    assert_eq!(queued.iter().map(|t| t.id).collect::<Vec<_>>(), [ids[3]]);
    let mut active: Vec<TaskId> = s.active().await.unwrap().iter().map(|t| t.id).collect();
    active.sort();
    let mut want = vec![ids[0], ids[2]];
    want.sort();
    assert_eq!(active, want);
}

pub async fn cancel_queued_running_and_finished(s: Arc<dyn TaskStore>) {
    let q = create(&*s, new_task("q", &[], None)).await;
    let c = s.request_cancel(q.id).await.unwrap();
    assert_eq!(
        (c.status, c.reason),
        (TaskStatus::Cancelled, Reason::CancelledByUser)
    );
    assert!(matches!(
        s.request_cancel(q.id).await.unwrap_err(),
        StoreError::AlreadyFinished(TaskStatus::Cancelled)
    ));
    let r = create(&*s, new_task("r", &[], None)).await;
    advance(&*s, r.id, &[TaskStatus::Starting]).await;
    let flagged = s.request_cancel(r.id).await.unwrap();
    assert_eq!(flagged.status, TaskStatus::Starting);
    assert!(flagged.cancel_requested);
    assert!(s.get(r.id).await.unwrap().unwrap().cancel_requested);
    assert!(matches!(
        s.request_cancel(TaskId::new()).await.unwrap_err(),
        StoreError::NotFound
    ));
    assert_eq!(count_of(&*s, TaskStatus::Cancelled).await, 1);
}

/// A fenced change with no lease of that generation in the store (or a store without leases)
/// is refused and changes nothing.
pub async fn fenced_transition_without_its_lease_is_refused(store: Arc<dyn TaskStore>) {
    let task = create(&*store, new_task("unfenced", &[], None)).await;
    let claim = Transition::new(TaskStatus::Starting, Reason::Scheduled)
        .fence(Some(crate::lease::Fence(7)));
    match store.transition(task.id, TaskStatus::Queued, claim).await {
        Err(StoreError::Fenced { fence }) => assert_eq!(fence.0, 7),
        other => panic!("expected Fenced, got {other:?}"),
    }
    let now = store.get(task.id).await.unwrap().unwrap();
    assert_eq!(now.status, TaskStatus::Queued);
    assert_eq!(count_of(&*store, TaskStatus::Queued).await, 1);
}

/// A move may carry the worker token's hash and a result: both are stored with it, in the
/// same statement, and neither when the move loses its compare-and-set.
pub async fn transition_stores_token_hash_and_result_with_the_move(store: Arc<dyn TaskStore>) {
    let task = create(&*store, new_task("carried", &[], None)).await;
    let mut claim = Transition::new(TaskStatus::Starting, Reason::Scheduled);
    claim.worker_token_hash = Some("hash-1".into());
    store
        .transition(task.id, TaskStatus::Queued, claim.clone())
        .await
        .unwrap();
    assert_eq!(
        store.worker_token_hash(task.id).await.unwrap().as_deref(),
        Some("hash-1")
    );
    // A second claim that lost the race stores nothing.
    claim.worker_token_hash = Some("hash-2".into());
    assert!(
        store
            .transition(task.id, TaskStatus::Queued, claim)
            .await
            .is_err()
    );
    assert_eq!(
        store.worker_token_hash(task.id).await.unwrap().as_deref(),
        Some("hash-1")
    );

    let result: crate::task::TaskResult = serde_json::from_value(serde_json::json!({
        "outcome": "cancelled", "summary": "stopped", "cost_usd": 0.25
    }))
    .expect("a result");
    let mut stop = Transition::new(TaskStatus::Cancelled, Reason::CancelledByUser);
    stop.result = Some(result.clone());
    let done = store
        .transition(task.id, TaskStatus::Starting, stop)
        .await
        .unwrap();
    assert_eq!(
        done.result.as_ref(),
        Some(&result),
        "returned with the move"
    );
    let got = store.get(task.id).await.unwrap().unwrap();
    assert_eq!(got.result, Some(result));
}
