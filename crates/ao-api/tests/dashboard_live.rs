//! The dashboard's change stream (`/ui/changes`): behind the session like every page, a
//! `changed` event after a task is created or changes (the list), or after a write to one
//! task (`?task=ID`), and clear errors for a task that isn't there.

mod support;

use std::time::Duration;

use ao_core::store::TaskStore;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures::StreamExt;
use serde_json::json;
use support::{App, TOKEN};
use tower::ServiceExt;

fn get(uri: &str, session: bool) -> Request<Body> {
    let mut r = Request::builder().uri(uri);
    if session {
        r = r.header(header::COOKIE, format!("ao_session={}", hex::encode(TOKEN)));
    }
    r.body(Body::empty()).unwrap()
}

/// The open stream of `uri` (asserting a 200 `text/event-stream`).
async fn open(app: &App, uri: &str) -> axum::body::BodyDataStream {
    let resp = app.router.clone().oneshot(get(uri, true)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{uri}");
    let ct = resp.headers()[header::CONTENT_TYPE].to_str().unwrap();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    resp.into_body().into_data_stream()
}

/// Reads the stream until a `changed` event that a browser dispatches: one with data (the SSE
/// spec drops an event whose data is empty). Bounded, so a missing event fails the test
/// instead of hanging it.
async fn next_changed(s: &mut axum::body::BodyDataStream) {
    let mut seen = String::new();
    let read = async {
        while let Some(chunk) = s.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            let dispatched = seen.split("\n\n").any(|block| {
                let lines: Vec<&str> = block.lines().collect();
                lines.contains(&"event: changed") && lines.iter().any(|l| l.starts_with("data:"))
            });
            if dispatched {
                return true;
            }
        }
        false
    };
    let got = tokio::time::timeout(Duration::from_secs(30), read).await;
    assert!(matches!(got, Ok(true)), "no `changed` event; read {seen:?}");
}

#[tokio::test]
async fn the_stream_needs_a_session_before_anything() {
    let app = App::new().await;
    let r = app.router.clone().oneshot(get("/ui/changes", false)).await;
    assert_eq!(r.unwrap().status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_list_stream_says_when_a_task_is_created_or_changes() {
    let app = App::new().await;
    let mut s = open(&app, "/ui/changes").await;
    // The opening event: whatever changed before the stream subscribed is re-read.
    next_changed(&mut s).await;
    let id = app.submit(json!({"prompt": "one"})).await;
    next_changed(&mut s).await;
    app.store.request_cancel(id).await.unwrap();
    next_changed(&mut s).await;
}

#[tokio::test]
async fn a_task_stream_says_when_that_task_changes() {
    let app = App::new().await;
    let id = app.submit(json!({"prompt": "one"})).await;
    let mut s = open(&app, &format!("/ui/changes?task={id}")).await;
    next_changed(&mut s).await;
    app.store
        .append_events(id, &[json!({"type": "assistant"})])
        .await
        .unwrap();
    next_changed(&mut s).await;
}

/// A page is rendered before its stream subscribes; a change in between must not be lost, so
/// every stream opens with a `changed` event, with nothing written after it opened.
#[tokio::test]
async fn every_stream_opens_with_a_changed_event() {
    let app = App::new().await;
    let id = app.submit(json!({"prompt": "one"})).await;
    for uri in ["/ui/changes".to_string(), format!("/ui/changes?task={id}")] {
        let mut s = open(&app, &uri).await;
        next_changed(&mut s).await;
    }
}

#[tokio::test]
async fn a_task_stream_of_an_unknown_or_malformed_task_is_refused() {
    let app = App::new().await;
    let unknown = format!("/ui/changes?task={}", ao_core::task::TaskId::new());
    let r = app.router.clone().oneshot(get(&unknown, true)).await;
    assert_eq!(r.unwrap().status(), StatusCode::NOT_FOUND);
    // As on the API, an id that cannot exist is simply not found.
    let r = app
        .router
        .clone()
        .oneshot(get("/ui/changes?task=nope", true));
    assert_eq!(r.await.unwrap().status(), StatusCode::NOT_FOUND);
}
