//! Store behaviour against a fresh database file.

use std::collections::BTreeMap;

use ao_core::lifecycle::{Reason, TaskStatus};
use ao_core::store::{Created, ListQuery, StoreError, TaskStore, Transition};
use ao_core::task::{NewTask, TaskId, TaskSpec};
use chrono::Utc;

use crate::SqliteStore;

async fn store() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
    (s, dir)
}

fn new_task(prompt: &str, labels: &[(&str, &str)], key: Option<&str>) -> NewTask {
    NewTask {
        id: TaskId::new(),
        spec: TaskSpec {
            prompt: prompt.into(),
            repository: None,
            model: None,
            max_turns: None,
            timeout_seconds: 60,
            max_budget_usd: None,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            env: BTreeMap::new(),
        },
        idempotency_key: key.map(str::to_string),
        request_hash: format!("h-{prompt}"),
        created_at: Utc::now(),
    }
}

async fn create(s: &SqliteStore, t: NewTask) -> ao_core::Task {
    match s.create(t, 100).await.unwrap() {
        Created::New(t) => t,
        Created::Existing(_) => panic!("expected a new task"),
    }
}

#[tokio::test]
async fn create_get_and_history() {
    let (s, _d) = store().await;
    let t = create(&s, new_task("p", &[], None)).await;
    assert_eq!(t.status, TaskStatus::Queued);
    assert_eq!(t.reason, Reason::Submitted);
    let got = s.get(t.id).await.unwrap().unwrap();
    assert_eq!(got, t);
    let h = s.history(t.id).await.unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!((h[0].from, h[0].to), (None, TaskStatus::Queued));
    assert!(s.get(TaskId::new()).await.unwrap().is_none());
}

#[tokio::test]
async fn idempotency_key_returns_same_task_or_conflicts() {
    let (s, _d) = store().await;
    let a = create(&s, new_task("p", &[], Some("k1"))).await;
    match s.create(new_task("p", &[], Some("k1")), 100).await.unwrap() {
        Created::Existing(b) => assert_eq!(a.id, b.id),
        Created::New(_) => panic!("duplicate created"),
    }
    let err = s
        .create(new_task("other", &[], Some("k1")), 100)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IdempotencyConflict));
}

#[tokio::test]
async fn queue_bound_is_enforced() {
    let (s, _d) = store().await;
    s.create(new_task("a", &[], None), 2).await.unwrap();
    s.create(new_task("b", &[], None), 2).await.unwrap();
    let err = s.create(new_task("c", &[], None), 2).await.unwrap_err();
    assert!(matches!(err, StoreError::QueueFull { limit: 2 }));
}

#[tokio::test]
async fn transitions_are_checked_and_compare_and_set() {
    let (s, _d) = store().await;
    let t = create(&s, new_task("p", &[], None)).await;
    let err = s
        .transition(
            t.id,
            TaskStatus::Queued,
            Transition::new(TaskStatus::Running, Reason::WorkerStarted),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IllegalTransition(_)));
    s.transition(
        t.id,
        TaskStatus::Queued,
        Transition::new(TaskStatus::Starting, Reason::Scheduled),
    )
    .await
    .unwrap();
    let err = s
        .transition(
            t.id,
            TaskStatus::Queued,
            Transition::new(TaskStatus::Starting, Reason::Scheduled),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::StatusChanged {
            actual: TaskStatus::Starting,
            ..
        }
    ));
    let w = ao_core::WorkerRef {
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
    assert_eq!(s.history(t.id).await.unwrap().len(), 4);
}

#[tokio::test]
async fn cancel_queued_running_and_finished() {
    let (s, _d) = store().await;
    let q = create(&s, new_task("q", &[], None)).await;
    let c = s.request_cancel(q.id).await.unwrap();
    assert_eq!(
        (c.status, c.reason),
        (TaskStatus::Cancelled, Reason::CancelledByUser)
    );
    assert!(matches!(
        s.request_cancel(q.id).await.unwrap_err(),
        StoreError::AlreadyFinished(TaskStatus::Cancelled)
    ));
    let r = create(&s, new_task("r", &[], None)).await;
    s.transition(
        r.id,
        TaskStatus::Queued,
        Transition::new(TaskStatus::Starting, Reason::Scheduled),
    )
    .await
    .unwrap();
    let flagged = s.request_cancel(r.id).await.unwrap();
    assert_eq!(flagged.status, TaskStatus::Starting);
    assert!(flagged.cancel_requested);
    assert!(matches!(
        s.request_cancel(TaskId::new()).await.unwrap_err(),
        StoreError::NotFound
    ));
}

#[tokio::test]
async fn list_filters_and_paginates_newest_first() {
    let (s, _d) = store().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let team = if i % 2 == 0 { "a" } else { "b" };
        ids.push(
            create(&s, new_task(&format!("p{i}"), &[("team", team)], None))
                .await
                .id,
        );
    }
    let page = s
        .list(&ListQuery {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![ids[4], ids[3]]
    );
    let next = s
        .list(&ListQuery {
            limit: 2,
            cursor: page.next_cursor.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        next.items.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![ids[2], ids[1]]
    );
    let last = s
        .list(&ListQuery {
            limit: 2,
            cursor: next.next_cursor,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(last.items.len(), 1);
    assert!(last.next_cursor.is_none());
    let a = s
        .list(&ListQuery {
            limit: 10,
            labels: vec![("team".into(), "a".into())],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(a.items.len(), 3);
    s.request_cancel(ids[0]).await.unwrap();
    let c = s
        .list(&ListQuery {
            limit: 10,
            status: Some(TaskStatus::Cancelled),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(c.items.len(), 1);
    assert!(matches!(
        s.list(&ListQuery {
            limit: 1,
            cursor: Some("x".into()),
            ..Default::default()
        })
        .await
        .unwrap_err(),
        StoreError::InvalidCursor
    ));
    assert_eq!(
        s.queued(10).await.unwrap().first().map(|t| t.id),
        Some(ids[1])
    );
}

#[tokio::test]
async fn logs_and_events_append_in_order() {
    let (s, _d) = store().await;
    let t = create(&s, new_task("p", &[], None)).await;
    let rx = s.changes();
    let lines: Vec<String> = (0..450).map(|i| format!("line {i}")).collect();
    s.append_logs(t.id, &lines).await.unwrap();
    assert!(rx.has_changed().unwrap());
    s.append_logs(t.id, &["tail".to_string()]).await.unwrap();
    assert_eq!(s.log_count(t.id).await.unwrap(), 451);
    let got = s.logs(t.id, 448, 10).await.unwrap();
    assert_eq!(
        got.iter().map(|l| l.seq).collect::<Vec<_>>(),
        vec![449, 450, 451]
    );
    assert_eq!(got[2].line, "tail");
    let last = s
        .append_events(
            t.id,
            &[
                serde_json::json!({"type": "system"}),
                serde_json::json!({"type": "result"}),
            ],
        )
        .await
        .unwrap();
    assert_eq!(last, 2);
    let ev = s.events(t.id, 1, 10).await.unwrap();
    assert_eq!(ev[0].event["type"], "result");
}
