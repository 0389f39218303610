//! A task's output as the store keeps it: worker log lines (`/logs`, plain text) and agent
//! events (`/events`, Server-Sent Events). Both replay what is stored, then, when asked to
//! follow, wait on the task's subscription to the store's change feed (no polling loop, and
//! no wake-up for writes to other tasks) until the task has ended and everything it produced
//! was sent.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ao_core::store::{StoreError, Subscription, TaskStore};
use ao_core::task::TaskId;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::tasks::task_id;

const BATCH: usize = 500;

type Fetch<T> = Arc<
    dyn Fn(
            Arc<dyn TaskStore>,
            TaskId,
            i64,
        ) -> Pin<Box<dyn Future<Output = Result<Vec<(i64, T)>, StoreError>> + Send>>
        + Send
        + Sync,
>;

/// Replays a task's stored sequence after `after`, then follows it until the task ends.
struct Follower<T> {
    store: Arc<dyn TaskStore>,
    id: TaskId,
    after: i64,
    follow: bool,
    changes: Subscription,
    fetch: Fetch<T>,
    done: bool,
}

enum Item<T> {
    Batch(Vec<(i64, T)>),
    /// The task ended; carries its final status and reason.
    End(serde_json::Value),
}

impl<T: Send + 'static> Follower<T> {
    async fn next(&mut self) -> Option<Result<Item<T>, StoreError>> {
        if self.done {
            return None;
        }
        loop {
            self.changes.mark_seen();
            let batch = match (self.fetch)(self.store.clone(), self.id, self.after).await {
                Ok(b) => b,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            if let Some((seq, _)) = batch.last() {
                self.after = *seq;
                return Some(Ok(Item::Batch(batch)));
            }
            let task = match self.store.get(self.id).await {
                Ok(Some(t)) => t,
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            };
            // Runtimes store all output before the task turns terminal, so an empty batch
            // after a terminal status means we are complete.
            if !self.follow || task.status.is_terminal() {
                self.done = true;
                let end = serde_json::json!({"status": task.status, "reason": task.reason});
                return Some(Ok(Item::End(end)));
            }
            // Wake on a write to this task; the timeout only guards against a missed
            // notification.
            let _ = tokio::time::timeout(Duration::from_secs(5), self.changes.changed()).await;
        }
    }
}

fn follower<T: Send + 'static>(
    state: &AppState,
    id: TaskId,
    after: i64,
    follow: bool,
    fetch: Fetch<T>,
) -> Follower<T> {
    Follower {
        store: state.store.clone(),
        id,
        after,
        follow,
        changes: state.store.subscribe(id),
        fetch,
        done: false,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogParams {
    /// Keep the response open and stream new lines until the task ends.
    #[serde(default)]
    pub follow: bool,
    /// Only lines after this line number.
    #[serde(default)]
    pub after: Option<i64>,
}

pub(crate) async fn existing(state: &AppState, raw: &str) -> Result<TaskId, ApiError> {
    let id = task_id(raw)?;
    state
        .store
        .get(id)
        .await?
        .ok_or_else(ApiError::not_found_task)?;
    Ok(id)
}

/// The worker's output, one line per line.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/logs", tag = "tasks",
    params(("id" = String, Path, description = "Task id"), LogParams),
    responses((status = 200, description = "Plain-text output", content_type = "text/plain", body = String),
              (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn logs(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Result<Query<LogParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(query_error)?;
    let id = existing(&state, &id).await?;
    let fetch: Fetch<String> = Arc::new(|store, id, after| {
        Box::pin(async move {
            Ok(store
                .logs(id, after, BATCH)
                .await?
                .into_iter()
                .map(|l| (l.seq, l.line))
                .collect())
        })
    });
    let f = follower(&state, id, params.after.unwrap_or(0), params.follow, fetch);
    let body = stream::unfold(f, |mut f| async move {
        let chunk = match f.next().await? {
            Ok(Item::Batch(lines)) => {
                let mut s = String::new();
                for (_, l) in lines {
                    s.push_str(&l);
                    s.push('\n');
                }
                Ok(Bytes::from(s))
            }
            Ok(Item::End(_)) => Ok(Bytes::new()),
            Err(e) => Err(std::io::Error::other(e.to_string())),
        };
        Some((chunk, f))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    /// Replay events after this sequence number (the `Last-Event-ID` header does the same).
    #[serde(default)]
    pub after: Option<i64>,
    /// `false` returns what is stored and ends; the default follows until the task ends.
    #[serde(default)]
    pub follow: Option<bool>,
}

/// The agent's events as Server-Sent Events: replay from the start (or after `Last-Event-ID`),
/// then live until the task ends. Each SSE `id` is the event's sequence number and its `event`
/// name is the event's `type` (`system`, `assistant`, `user`, `result`, `worker`, ...). A final
/// `end` event carries the task's status and reason.
#[utoipa::path(get, path = "/api/v1/tasks/{id}/events", tag = "tasks",
    params(("id" = String, Path, description = "Task id"), EventParams,
           ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event")),
    responses((status = 200, description = "text/event-stream", content_type = "text/event-stream", body = String),
              (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Result<Query<EventParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(params) = params.map_err(query_error)?;
    let id = existing(&state, &id).await?;
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let after = params.after.or(last_id).unwrap_or(0);
    let fetch: Fetch<serde_json::Value> = Arc::new(|store, id, after| {
        Box::pin(async move {
            Ok(store
                .events(id, after, BATCH)
                .await?
                .into_iter()
                .map(|e| (e.seq, e.event))
                .collect())
        })
    });
    let f = follower(&state, id, after, params.follow.unwrap_or(true), fetch);
    let s = stream::unfold(f, |mut f| async move {
        let events: Vec<Event> = match f.next().await? {
            Ok(Item::Batch(batch)) => batch
                .into_iter()
                .map(|(seq, ev)| sse_event(seq, &ev))
                .collect(),
            Ok(Item::End(end)) => vec![Event::default().event("end").data(end.to_string())],
            Err(e) => vec![
                Event::default()
                    .event("error")
                    .data(serde_json::json!({"message": e.to_string()}).to_string()),
            ],
        };
        Some((stream::iter(events.into_iter().map(Ok)), f))
    })
    .flatten();
    Ok(Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// A query string that does not fit the route's parameters is a 422 on `query`.
fn query_error(e: axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::Validation(ao_core::validation::ValidationError {
        field: "query".into(),
        message: e.body_text(),
    })
}

fn sse_event(seq: i64, ev: &serde_json::Value) -> Event {
    let kind = ev.get("type").and_then(|t| t.as_str()).unwrap_or("event");
    let kind: String = kind
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    Event::default()
        .id(seq.to_string())
        .event(kind)
        .data(ev.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use ao_core::store::{Created, TaskStore};
    use ao_core::task::NewTask;
    use ao_store_sqlite::SqliteStore;
    use tokio::sync::mpsc;

    use super::*;

    async fn task(store: &dyn TaskStore, prompt: &str) -> TaskId {
        let spec =
            serde_json::from_value(serde_json::json!({"prompt": prompt, "timeout_seconds": 60}));
        let new = NewTask {
            id: TaskId::new(),
            spec: spec.unwrap(),
            idempotency_key: None,
            request_hash: prompt.into(),
            created_at: chrono::Utc::now(),
        };
        match store.create(new, 10).await.unwrap() {
            Created::New(t) => t.id,
            Created::Existing(_) => unreachable!("no idempotency key"),
        }
    }

    /// A follower of A re-reads the store only for A's writes: B's writes while it waits
    /// would make it fetch once more before A's line arrives (two fetches, not three).
    #[tokio::test]
    async fn a_follower_of_one_task_is_not_woken_by_another() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn TaskStore> =
            Arc::new(SqliteStore::open(&dir.path().join("t.db")).await.unwrap());
        let (a, b) = (task(&*store, "a").await, task(&*store, "b").await);
        let fetches = Arc::new(AtomicUsize::new(0));
        let (fetched_tx, mut fetched) = mpsc::unbounded_channel();
        let counter = fetches.clone();
        let fetch: Fetch<String> = Arc::new(move |store, id, after| {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = fetched_tx.send(());
            Box::pin(async move {
                let lines = store.logs(id, after, BATCH).await?;
                Ok(lines.into_iter().map(|l| (l.seq, l.line)).collect())
            })
        });
        let mut follower = Follower {
            store: store.clone(),
            id: a,
            after: 0,
            follow: true,
            changes: store.subscribe(a),
            fetch,
            done: false,
        };
        let next = tokio::spawn(async move {
            let item = follower.next().await;
            (follower, item)
        });
        fetched.recv().await.unwrap();
        store.append_logs(b, &["b1".into()]).await.unwrap();
        store
            .append_events(b, &[serde_json::json!({"type": "x"})])
            .await
            .unwrap();
        store.request_cancel(b).await.unwrap();
        store.append_logs(a, &["a1".into()]).await.unwrap();
        let (_follower, item) = next.await.unwrap();
        let Some(Ok(Item::Batch(batch))) = item else {
            panic!("expected A's line");
        };
        assert_eq!(batch, [(1, "a1".to_string())]);
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            2,
            "B's writes woke A's follower"
        );
    }
}
