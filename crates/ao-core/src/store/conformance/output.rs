//! Conformance cases for a task's output (log lines, events) and its change feed.

use std::sync::Arc;

use super::{advance, create, new_task};
use crate::lifecycle::TaskStatus;
use crate::store::{StoreError, Subscription, TaskStore};
use crate::task::{TaskId, TaskResult};

pub async fn logs_and_events_append_in_order(s: Arc<dyn TaskStore>) {
    let t = create(&*s, new_task("p", &[], None)).await;
    assert_eq!(s.log_count(t.id).await.unwrap(), 0);
    let lines: Vec<String> = (0..450).map(|i| format!("line {i}")).collect();
    s.append_logs(t.id, &lines).await.unwrap();
    s.append_logs(t.id, &[]).await.unwrap();
    s.append_logs(t.id, &["tail".to_string()]).await.unwrap();
    assert_eq!(s.log_count(t.id).await.unwrap(), 451);
    let all = s.logs(t.id, 0, 1000).await.unwrap();
    assert_eq!(all.len(), 451);
    assert!(all.iter().enumerate().all(|(i, l)| l.seq == i as i64 + 1));
    assert_eq!(all[7].line, "line 7");
    let got = s.logs(t.id, 448, 10).await.unwrap();
    assert_eq!(
        got.iter().map(|l| l.seq).collect::<Vec<_>>(),
        [449, 450, 451]
    );
    assert_eq!(got[2].line, "tail");
    assert_eq!(s.logs(t.id, 0, 2).await.unwrap().len(), 2);
    assert_eq!(s.append_events(t.id, &[]).await.unwrap(), 0);
    let batch = [
        serde_json::json!({"type": "system"}),
        serde_json::json!({"type": "result", "n": [1, 2]}),
    ];
    assert_eq!(s.append_events(t.id, &batch).await.unwrap(), 2);
    assert_eq!(s.append_events(t.id, &batch[..1]).await.unwrap(), 3);
    assert_eq!(s.append_events(t.id, &[]).await.unwrap(), 3);
    let ev = s.events(t.id, 1, 10).await.unwrap();
    assert_eq!(ev.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(ev[0].event, batch[1]);
    assert_eq!(s.log_count(t.id).await.unwrap(), 451, "events number apart");
}

pub async fn output_of_unknown_task(s: Arc<dyn TaskStore>) {
    let id = TaskId::new();
    assert_eq!(s.log_count(id).await.unwrap(), 0);
    assert!(s.logs(id, 0, 10).await.unwrap().is_empty());
    assert!(s.events(id, 0, 10).await.unwrap().is_empty());
    assert_eq!(s.append_events(id, &[]).await.unwrap(), 0);
    let err = s.append_logs(id, &["x".into()]).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err}");
    let err = s
        .append_events(id, &[serde_json::json!({"type": "x"})])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err}");
}

/// Assert that `sub` fired since it was last seen, and mark it seen.
#[track_caller]
fn fired(sub: &mut Subscription, what: &str) {
    assert!(sub.has_changed(), "{what} did not wake the task's follower");
    sub.mark_seen();
}

/// A follower of task A wakes for every kind of write to A and for none to B.
pub async fn subscription_wakes_only_for_its_task(s: Arc<dyn TaskStore>) {
    let a = create(&*s, new_task("a", &[], None)).await;
    let b = create(&*s, new_task("b", &[], None)).await;
    let mut sub_a = s.subscribe(a.id);
    let mut sub_b = s.subscribe(b.id);
    assert!(!sub_a.has_changed(), "a new subscription starts seen");
    let result: TaskResult =
        serde_json::from_value(serde_json::json!({"outcome": "answered"})).expect("a result");

    s.append_logs(b.id, &["b".into()]).await.unwrap();
    s.append_events(b.id, &[serde_json::json!({"type": "x"})])
        .await
        .unwrap();
    advance(&*s, b.id, &[TaskStatus::Starting, TaskStatus::Running]).await;
    s.request_cancel(b.id).await.unwrap();
    s.set_result(b.id, &result).await.unwrap();
    let _c = create(&*s, new_task("c", &[], None)).await;
    assert!(
        !sub_a.has_changed(),
        "writes to other tasks woke A's follower"
    );
    fired(&mut sub_b, "B's writes");

    s.append_logs(a.id, &["a".into()]).await.unwrap();
    fired(&mut sub_a, "a log line");
    s.append_events(a.id, &[serde_json::json!({"type": "x"})])
        .await
        .unwrap();
    fired(&mut sub_a, "an event");
    advance(&*s, a.id, &[TaskStatus::Starting]).await;
    fired(&mut sub_a, "a status change");
    s.request_cancel(a.id).await.unwrap();
    fired(&mut sub_a, "a cancel request");
    s.set_result(a.id, &result).await.unwrap();
    fired(&mut sub_a, "a result");
    assert!(!sub_b.has_changed(), "writes to A woke B's follower");

    // The wake-up is awaitable, not only observable.
    let writer = {
        let s = s.clone();
        tokio::spawn(async move { s.append_logs(a.id, &["later".into()]).await })
    };
    sub_a.changed().await;
    writer.await.unwrap().unwrap();
    assert_eq!(s.log_count(a.id).await.unwrap(), 2);
}

/// A follower of the list wakes for every change to a task (created, status, cancel flag,
/// result) and for none of its output.
pub async fn list_subscription_wakes_for_tasks_not_output(s: Arc<dyn TaskStore>) {
    let mut list = s.subscribe_list();
    assert!(!list.has_changed(), "a new subscription starts seen");
    let a = create(&*s, new_task("a", &[], None)).await;
    assert!(list.has_changed(), "a new task did not wake the list");
    list.mark_seen();
    s.append_logs(a.id, &["a".into()]).await.unwrap();
    s.append_events(a.id, &[serde_json::json!({"type": "x"})])
        .await
        .unwrap();
    assert!(!list.has_changed(), "output woke the list");
    advance(&*s, a.id, &[TaskStatus::Starting]).await;
    assert!(list.has_changed(), "a status change did not wake the list");
    list.mark_seen();
    s.request_cancel(a.id).await.unwrap();
    assert!(list.has_changed(), "a cancel request did not wake the list");
    list.mark_seen();
    let result: TaskResult =
        serde_json::from_value(serde_json::json!({"outcome": "answered"})).expect("a result");
    s.set_result(a.id, &result).await.unwrap();
    assert!(list.has_changed(), "a result did not wake the list");
    list.mark_seen();
    let writer = {
        let s = s.clone();
        tokio::spawn(async move { create(&*s, new_task("b", &[], None)).await })
    };
    list.changed().await;
    writer.await.unwrap();
}
