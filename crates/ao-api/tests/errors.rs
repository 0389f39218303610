//! Error mapping of the task API, on both submit routes: each kind of bad request gets its
//! status and the JSON error shape, naming the field where there is one.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::json;
use support::{App, Authed, Options, empty, json, raw};

const SUBMIT: [&str; 2] = ["/api/v1/tasks", "/api/tasks"];

#[tokio::test]
async fn malformed_json_is_a_400() {
    let app = App::new().await;
    for uri in SUBMIT {
        for body in ["{nope", "", "{\"prompt\": \"x\""] {
            let r = app
                .send(raw(Method::POST, uri, "application/json", body).authed())
                .await;
            r.error(StatusCode::BAD_REQUEST, "bad_request");
        }
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_415() {
    let app = App::new().await;
    for uri in SUBMIT {
        for ct in ["text/plain", "application/x-www-form-urlencoded", ""] {
            let r = app
                .send(raw(Method::POST, uri, ct, r#"{"prompt":"x"}"#).authed())
                .await;
            r.error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
        }
        let r = app
            .send(
                raw(
                    Method::POST,
                    uri,
                    "application/merge-patch+json",
                    r#"{"task":"x"}"#,
                )
                .authed(),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    }
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413() {
    let app = App::with(Options {
        body_limit: 4096,
        ..Options::default()
    })
    .await;
    let big = json!({"prompt": "p".repeat(5000)});
    for uri in SUBMIT {
        let r = app.send(json(Method::POST, uri, &big).authed()).await;
        let e = r.error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
        assert!(e["message"].as_str().unwrap().contains("4096"), "{e}");
    }
}

#[tokio::test]
async fn an_invalid_field_is_a_422_that_names_it() {
    let app = App::new().await;
    let cases = [
        (json!({"prompt": "x", "bogus": 1}), "bogus"),
        (json!({"prompt": "x", "max_turns": "ten"}), "max_turns"),
        (
            json!({"prompt": "x", "repository": {"url": "u", "extra": 1}}),
            "repository.extra",
        ),
        (json!({"prompt": "x", "labels": {"a": 1}}), "labels.a"),
        (json!([1]), "body"),
        // Refused by the runtime at admission, not by validation.
        (json!({"prompt": "an unrunnable task"}), "prompt"),
    ];
    for uri in SUBMIT {
        for (body, field) in &cases {
            let r = app.send(json(Method::POST, uri, body).authed()).await;
            let e = r.error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
            assert_eq!(e["field"], *field, "{uri} {body}");
        }
    }
    let list = app
        .send(empty(Method::GET, "/api/v1/tasks").authed())
        .await
        .json();
    assert!(list["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_full_queue_is_a_429_with_retry_after() {
    let app = App::with(Options {
        max_queued: 2,
        ..Options::default()
    })
    .await;
    app.submit(json!({"prompt": "1"})).await;
    app.submit(json!({"prompt": "2"})).await;
    for uri in SUBMIT {
        let r = app
            .send(json(Method::POST, uri, &json!({"prompt": "3"})).authed())
            .await;
        r.error(StatusCode::TOO_MANY_REQUESTS, "queue_full");
        let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!(secs > 0);
    }
}

#[tokio::test]
async fn conflicts_are_409s() {
    let app = App::new().await;
    for uri in SUBMIT {
        let key = format!("key-{}", uri.len());
        let send = |prompt: &str| {
            let mut req = json(Method::POST, uri, &json!({ "prompt": prompt })).authed();
            req.headers_mut()
                .insert("idempotency-key", key.parse().unwrap());
            app.send(req)
        };
        assert_eq!(send("first").await.status, StatusCode::ACCEPTED);
        send("different")
            .await
            .error(StatusCode::CONFLICT, "conflict");
    }
    // Cancelling a finished task.
    let id = app.submit(json!({"prompt": "x"})).await;
    let cancel = || app.send(empty(Method::POST, &format!("/api/v1/tasks/{id}/cancel")).authed());
    let first = cancel().await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    assert_eq!(first.json()["status"], "cancelled");
    cancel().await.error(StatusCode::CONFLICT, "conflict");
}

#[tokio::test]
async fn a_bad_idempotency_key_is_a_422_naming_the_header() {
    let app = App::new().await;
    let mut req = json(Method::POST, "/api/tasks", &json!({"task": "x"})).authed();
    req.headers_mut()
        .insert("idempotency-key", "k".repeat(256).parse().unwrap());
    let e = app
        .send(req)
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(e["field"], "Idempotency-Key");
}
