//! The worker callback routes check the task's token before anything else: every failure is
//! the same 401, whether the task exists or not, and the body is not read at all until the
//! token matched. Only then is the body read, within its own limit (413 past it).

mod support;

use ao_api::{EVENTS_BODY_LIMIT, RESULT_BODY_LIMIT};
use ao_core::store::TaskStore;
use ao_core::task::TaskId;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;
use support::{App, Authed, EndlessBody, json};

const WORKER_TOKEN: &str = "the-worker-token-of-this-task";
const UNKNOWN: &str = "0196f6c1-0000-7000-8000-000000000000";

/// A task whose worker holds [`WORKER_TOKEN`].
async fn task_with_worker(app: &App) -> TaskId {
    let id = app.submit(json!({"prompt": "x"})).await;
    app.store
        .set_worker_token_hash(id, &ao_core::token::hash(WORKER_TOKEN))
        .await
        .unwrap();
    id
}

fn routes(id: &str) -> [(Method, String); 2] {
    [
        (Method::POST, format!("/api/v1/tasks/{id}/worker/events")),
        (Method::PUT, format!("/api/v1/tasks/{id}/worker/result")),
    ]
}

fn streaming(method: Method, uri: &str, body: Body, token: Option<&str>) -> Request<Body> {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap();
    match token {
        Some(t) => req.bearer(t),
        None => req,
    }
}

#[tokio::test]
async fn every_auth_failure_is_the_same_401_and_the_body_is_never_read() {
    let app = App::new().await;
    let id = task_with_worker(&app).await.to_string();
    let ids = [id.as_str(), UNKNOWN, "not-an-id", "%FF%FE"];
    let tokens = [
        None,
        Some("wrong-token"),
        // The API token is not a worker token.
        Some(support::TOKEN),
    ];
    let mut bodies = Vec::new();
    for raw_id in ids {
        for (method, uri) in routes(raw_id) {
            for token in tokens {
                let big = EndlessBody::default();
                let r = app
                    .send(streaming(method.clone(), &uri, big.body(), token))
                    .await;
                r.error(StatusCode::UNAUTHORIZED, "unauthorized");
                assert!(
                    !big.was_polled(),
                    "{method} {uri} read the body before the token"
                );
                bodies.push(r.text());
            }
        }
    }
    // The right token on another task's route is refused the same way.
    let other = task_with_worker(&app).await;
    app.store
        .set_worker_token_hash(other, &ao_core::token::hash("someone-else"))
        .await
        .unwrap();
    for (method, uri) in routes(&other.to_string()) {
        let big = EndlessBody::default();
        let r = app
            .send(streaming(method, &uri, big.body(), Some(WORKER_TOKEN)))
            .await;
        r.error(StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(!big.was_polled());
        bodies.push(r.text());
    }
    bodies.dedup();
    assert_eq!(bodies.len(), 1, "401 bodies differ: {bodies:?}");
}

#[tokio::test]
async fn a_task_without_a_worker_token_refuses_everyone() {
    let app = App::new().await;
    let id = app.submit(json!({"prompt": "x"})).await.to_string();
    for (method, uri) in routes(&id) {
        let big = EndlessBody::default();
        let r = app
            .send(streaming(method, &uri, big.body(), Some("")))
            .await;
        r.error(StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(!big.was_polled());
    }
}

#[tokio::test]
async fn with_the_token_bodies_are_bounded() {
    let app = App::new().await;
    let id = task_with_worker(&app).await.to_string();
    let [(em, events), (rm, result)] = routes(&id);
    for (method, uri, limit) in [
        (em, &events, EVENTS_BODY_LIMIT),
        (rm, &result, RESULT_BODY_LIMIT),
    ] {
        let big = EndlessBody::default();
        let r = app
            .send(streaming(
                method.clone(),
                uri,
                big.body(),
                Some(WORKER_TOKEN),
            ))
            .await;
        let e = r.error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
        assert!(e["message"].as_str().unwrap().contains(&limit.to_string()));
        // Reading stopped at the limit (plus the chunk that crossed it).
        assert!(
            big.bytes_read() <= limit + 64 * 1024,
            "{}",
            big.bytes_read()
        );
        // A declared length over the limit is refused before reading.
        let big = EndlessBody::default();
        let mut req = streaming(method, uri, big.body(), Some(WORKER_TOKEN));
        req.headers_mut()
            .insert(header::CONTENT_LENGTH, (limit + 1).into());
        app.send(req)
            .await
            .error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
        assert!(!big.was_polled());
    }
}

#[tokio::test]
async fn with_the_token_the_body_is_checked_and_stored() {
    let app = App::new().await;
    let id = task_with_worker(&app).await;
    let events = format!("/api/v1/tasks/{id}/worker/events");
    let send =
        |body: serde_json::Value| app.send(json(Method::POST, &events, &body).bearer(WORKER_TOKEN));
    let r = send(json!({"first_seq": 1, "events": [{"type": "system"}, {"type": "result"}]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["last_seq"], 2);
    // A resent batch is acknowledged without storing twice.
    let r = send(json!({"first_seq": 2, "events": [{"type": "result"}, {"type": "x"}]})).await;
    assert_eq!(r.json()["last_seq"], 3);
    let e = send(json!({"first_seq": 0, "events": []}))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(e["field"], "first_seq");
    let e = send(json!({"first_seq": 4, "events": [1]}))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(e["field"], "events[0]");
    let r = app
        .send(support::raw(Method::POST, &events, "text/plain", "{}").bearer(WORKER_TOKEN))
        .await;
    r.error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let r = app
        .send(support::raw(Method::POST, &events, "application/json", "{").bearer(WORKER_TOKEN))
        .await;
    r.error(StatusCode::BAD_REQUEST, "bad_request");

    let result = format!("/api/v1/tasks/{id}/worker/result");
    let r = app
        .send(
            json(
                Method::PUT,
                &result,
                &json!({"outcome": "answered", "summary": "42"}),
            )
            .bearer(WORKER_TOKEN),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let t = app.store.get(id).await.unwrap().unwrap();
    assert_eq!(t.result.unwrap().summary.as_deref(), Some("42"));
}

#[tokio::test]
async fn a_finished_task_is_a_409_but_only_for_its_own_worker() {
    let app = App::new().await;
    let id = task_with_worker(&app).await;
    let r = app
        .send(support::empty(Method::POST, &format!("/api/v1/tasks/{id}/cancel")).authed())
        .await;
    assert_eq!(r.json()["status"], "cancelled");
    for (method, uri) in routes(&id.to_string()) {
        let body = || Body::from(r#"{"first_seq": 1, "events": []}"#);
        let r = app
            .send(streaming(method.clone(), &uri, body(), Some(WORKER_TOKEN)))
            .await;
        r.error(StatusCode::CONFLICT, "conflict");
        let r = app
            .send(streaming(method, &uri, body(), Some("wrong")))
            .await;
        r.error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
}
