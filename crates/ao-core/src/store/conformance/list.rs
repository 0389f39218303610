//! Conformance cases for listing: newest-first pages, cursors, status, label and text filters,
//! the finished tasks of a window (usage reports), and
//! a query with thousands of label filters (which once made SQLite answer "Expression tree
//! is too large").

use std::sync::Arc;

use super::{advance, create, new_task};
use crate::lifecycle::TaskStatus;
use crate::store::{ListQuery, StoreError, TaskStore};
use crate::task::TaskId;

fn by_labels(labels: &[(String, String)]) -> ListQuery {
    ListQuery {
        limit: 100,
        labels: labels.to_vec(),
        ..ListQuery::default()
    }
}

fn pairs(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn ids(s: &dyn TaskStore, q: &ListQuery) -> Vec<TaskId> {
    let page = s.list(q).await.expect("list");
    page.items.iter().map(|t| t.id).collect()
}

pub async fn list_filters_and_paginates_newest_first(s: Arc<dyn TaskStore>) {
    let mut made = Vec::new();
    for i in 0..5 {
        let team = if i % 2 == 0 { "a" } else { "b" };
        let t = create(&*s, new_task(&format!("p{i}"), &[("team", team)], None)).await;
        made.push(t.id);
    }
    let first = ListQuery {
        limit: 2,
        ..ListQuery::default()
    };
    let page = s.list(&first).await.unwrap();
    let got: Vec<TaskId> = page.items.iter().map(|t| t.id).collect();
    assert_eq!(got, [made[4], made[3]]);
    let second = ListQuery {
        cursor: page.next_cursor.clone(),
        ..first.clone()
    };
    let next = s.list(&second).await.unwrap();
    let got: Vec<TaskId> = next.items.iter().map(|t| t.id).collect();
    assert_eq!(got, [made[2], made[1]]);
    let third = ListQuery {
        cursor: next.next_cursor,
        ..first.clone()
    };
    let last = s.list(&third).await.unwrap();
    assert_eq!(last.items.len(), 1);
    assert!(last.next_cursor.is_none());
    assert_eq!(
        ids(&*s, &by_labels(&pairs(&[("team", "a")]))).await.len(),
        3
    );
    s.request_cancel(made[0]).await.unwrap();
    let cancelled = ListQuery {
        limit: 10,
        status: Some(TaskStatus::Cancelled),
        ..ListQuery::default()
    };
    assert_eq!(ids(&*s, &cancelled).await, [made[0]]);
    let bad = ListQuery {
        limit: 1,
        cursor: Some("x".into()),
        ..ListQuery::default()
    };
    assert!(matches!(
        s.list(&bad).await.unwrap_err(),
        StoreError::InvalidCursor
    ));
    let queued = s.queued(10).await.unwrap();
    assert_eq!(queued.first().map(|t| t.id), Some(made[1]));
}

/// Every filter must match; repeats count once; two values for one key match nothing.
pub async fn list_label_filters_match_all_pairs(s: Arc<dyn TaskStore>) {
    let both = create(
        &*s,
        new_task("both", &[("team", "a"), ("env", "prod")], None),
    )
    .await;
    let team = create(
        &*s,
        new_task("team", &[("team", "a"), ("env", "dev")], None),
    )
    .await;
    let _other = create(&*s, new_task("other", &[("owner", "a")], None)).await;
    let q = pairs(&[("team", "a"), ("env", "prod")]);
    assert_eq!(ids(&*s, &by_labels(&q)).await, [both.id]);
    let q = pairs(&[("team", "a"), ("team", "a"), ("env", "prod")]);
    assert_eq!(
        ids(&*s, &by_labels(&q)).await,
        [both.id],
        "repeats count once"
    );
    let q = pairs(&[("team", "a")]);
    assert_eq!(ids(&*s, &by_labels(&q)).await, [team.id, both.id]);
    let q = pairs(&[("env", "prod"), ("env", "dev")]);
    assert!(ids(&*s, &by_labels(&q)).await.is_empty(), "contradiction");
    let q = pairs(&[("team", "A")]);
    assert!(
        ids(&*s, &by_labels(&q)).await.is_empty(),
        "values are exact"
    );
    let q = pairs(&[("owner", "a")]);
    let mut filtered = by_labels(&q);
    filtered.status = Some(TaskStatus::Cancelled);
    assert!(
        ids(&*s, &filtered).await.is_empty(),
        "status and labels both apply"
    );
}

/// 2,000 filters: a single query whatever their number, answered without error.
pub async fn list_with_thousands_of_label_filters(s: Arc<dyn TaskStore>) {
    let owned: Vec<(String, String)> = (0..2000)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    let borrowed: Vec<(&str, &str)> = owned
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let full = create(&*s, new_task("full", &borrowed, None)).await;
    let _part = create(&*s, new_task("part", &borrowed[..1999], None)).await;
    assert_eq!(ids(&*s, &by_labels(&owned)).await, [full.id]);
    let mut miss = owned.clone();
    miss[1234].1 = "other".into();
    assert!(ids(&*s, &by_labels(&miss)).await.is_empty());
    let unknown: Vec<(String, String)> = (0..2000)
        .map(|i| (format!("x{i}"), "y".to_string()))
        .collect();
    assert!(ids(&*s, &by_labels(&unknown)).await.is_empty());
}

/// The text search matches a substring of the prompt, ignoring ASCII case, and combines with
/// the other filters; `%` and `_` are plain characters.
pub async fn list_searches_prompts(s: Arc<dyn TaskStore>) {
    let fix = create(&*s, new_task("Fix the Login page", &[("team", "a")], None)).await;
    let docs = create(
        &*s,
        new_task("write docs for login", &[("team", "b")], None),
    )
    .await;
    let pct = create(&*s, new_task("raise coverage to 100%", &[], None)).await;
    let search = |text: &str| ListQuery {
        limit: 10,
        search: Some(text.into()),
        ..ListQuery::default()
    };
    assert_eq!(ids(&*s, &search("LOGIN")).await, [docs.id, fix.id]);
    assert_eq!(ids(&*s, &search("100%")).await, [pct.id]);
    assert!(ids(&*s, &search("_")).await.is_empty(), "no wildcards");
    let mut team = search("login");
    team.labels = pairs(&[("team", "a")]);
    assert_eq!(ids(&*s, &team).await, [fix.id]);
    assert_eq!(ids(&*s, &search("")).await.len(), 3, "empty matches all");
}

/// `finished_since` returns terminal tasks finished at or after the time, oldest first,
/// with their cost.
pub async fn finished_since_returns_terminal_tasks(s: Arc<dyn TaskStore>) {
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let a = create(&*s, new_task("a", &[], None)).await;
    let b = create(&*s, new_task("b", &[], None)).await;
    let _queued = create(&*s, new_task("c", &[], None)).await;
    s.request_cancel(a.id).await.unwrap();
    advance(
        &*s,
        b.id,
        &[
            TaskStatus::Starting,
            TaskStatus::Running,
            TaskStatus::Succeeded,
        ],
    )
    .await;
    let result: crate::task::TaskResult = serde_json::from_value(serde_json::json!({
        "outcome": "answered", "cost_usd": 0.25
    }))
    .expect("a result");
    s.set_result(b.id, &result).await.unwrap();
    let done = s.finished_since(before).await.unwrap();
    let got: Vec<_> = done.iter().map(|t| (t.id, t.status, t.cost_usd)).collect();
    assert_eq!(
        got,
        [
            (a.id, TaskStatus::Cancelled, None),
            (b.id, TaskStatus::Succeeded, Some(0.25))
        ]
    );
    assert!(done[0].started_at.is_none() && done[1].started_at.is_some());
    let later = chrono::Utc::now() + chrono::Duration::seconds(60);
    assert!(s.finished_since(later).await.unwrap().is_empty());
}
