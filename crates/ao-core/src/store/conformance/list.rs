//! Conformance cases for listing: newest-first pages, cursors, status and label filters, and
//! a query with thousands of label filters (which once made SQLite answer "Expression tree
//! is too large").

use std::sync::Arc;

use super::{create, new_task};
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
