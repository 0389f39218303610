//! The API token: every task route (the `/api/tasks` alias included) wants it; the probes,
//! metrics and the OpenAPI document do not; without configured tokens the API is open.

mod support;

use axum::http::{Method, StatusCode, header};
use serde_json::json;
use support::{App, Authed, Options, empty, json};

fn task_routes(id: &str) -> Vec<(Method, String)> {
    vec![
        (Method::POST, "/api/v1/tasks".into()),
        (Method::POST, "/api/tasks".into()),
        (Method::GET, "/api/v1/tasks".into()),
        (Method::GET, format!("/api/v1/tasks/{id}")),
        (Method::POST, format!("/api/v1/tasks/{id}/cancel")),
        (Method::GET, format!("/api/v1/tasks/{id}/logs")),
        (
            Method::GET,
            format!("/api/v1/tasks/{id}/events?follow=false"),
        ),
    ]
}

#[tokio::test]
async fn task_routes_refuse_a_missing_or_wrong_token() {
    let app = App::new().await;
    let id = app.submit(json!({"prompt": "x"})).await.to_string();
    let wrong = [
        None,
        Some("Bearer not-the-token"),
        Some("Bearer "),
        Some("Basic cm91dGVyOnRlc3Q="),
        Some(support::TOKEN),
    ];
    for (method, uri) in task_routes(&id) {
        for auth in wrong {
            let mut req = json(method.clone(), &uri, &json!({"prompt": "y"}));
            if let Some(a) = auth {
                req.headers_mut()
                    .insert(header::AUTHORIZATION, a.parse().unwrap());
            }
            let r = app.send(req).await;
            r.error(StatusCode::UNAUTHORIZED, "unauthorized");
            assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{uri}");
        }
    }
    // Nothing was submitted by the refused POSTs.
    let list = app
        .send(empty(Method::GET, "/api/v1/tasks").authed())
        .await
        .json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn task_routes_accept_the_token_case_insensitively_in_the_scheme() {
    let app = App::new().await;
    let mut req = empty(Method::GET, "/api/v1/tasks");
    req.headers_mut().insert(
        header::AUTHORIZATION,
        format!("bearer {}", support::TOKEN).parse().unwrap(),
    );
    assert_eq!(app.send(req).await.status, StatusCode::OK);
}

#[tokio::test]
async fn open_routes_need_no_token() {
    let app = App::new().await;
    for uri in [
        "/healthz",
        "/readyz",
        "/health",
        "/metrics",
        "/openapi.json",
    ] {
        let r = app.send(empty(Method::GET, uri)).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text());
    }
    let doc = app.send(empty(Method::GET, "/openapi.json")).await.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let health = app.send(empty(Method::GET, "/health")).await;
    assert_eq!(health.text(), "OK");
}

#[tokio::test]
async fn without_configured_tokens_the_task_api_is_open() {
    let app = App::with(Options {
        tokens: false,
        ..Options::default()
    })
    .await;
    for uri in ["/api/v1/tasks", "/api/tasks"] {
        let r = app
            .send(json(Method::POST, uri, &json!({"task": "x"})))
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{uri}: {}", r.text());
    }
    let r = app.send(empty(Method::GET, "/api/v1/tasks")).await;
    assert_eq!(r.status, StatusCode::OK);
}
