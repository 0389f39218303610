//! While the built-in agent can't run, both submit routes answer 503 `agent_unavailable` with
//! the fix, after the token check, storing nothing; once it can, the same request (and the
//! same `Idempotency-Key`) is accepted, without a restart.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ao_api::{Readiness, ReadinessCheck};
use axum::http::{Method, StatusCode};
use serde_json::json;
use support::{App, Authed, Options, json};

#[derive(Default)]
struct Switch(AtomicBool);

#[async_trait::async_trait]
impl Readiness for Switch {
    async fn agent_unavailable(&self) -> Option<String> {
        (!self.0.load(Ordering::SeqCst))
            .then(|| "Claude Code not found; fix: run `scripts/install-claude.sh`".to_owned())
    }

    async fn checks(&self) -> Vec<ReadinessCheck> {
        Vec::new()
    }
}

#[tokio::test]
async fn submissions_wait_for_the_agent_and_store_nothing_meanwhile() {
    let switch = Arc::new(Switch::default());
    let app = App::with(Options {
        readiness: switch.clone(),
        ..Options::default()
    })
    .await;
    let body = json!({"prompt": "Say hello"});
    for route in ["/api/v1/tasks", "/api/tasks"] {
        let r = app.send(json(Method::POST, route, &body)).await;
        r.error(StatusCode::UNAUTHORIZED, "unauthorized");
        let req = json(Method::POST, route, &body).authed().with_key("k-1");
        let e = app
            .send(req)
            .await
            .error(StatusCode::SERVICE_UNAVAILABLE, "agent_unavailable");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains("scripts/install-claude.sh"),
            "{e}"
        );
        // A bad body is still a 422 naming its field.
        let bad = json(Method::POST, route, &json!({"prompt": ""})).authed();
        app.send(bad)
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    let list = app
        .send(support::empty(Method::GET, "/api/v1/tasks").authed())
        .await;
    assert_eq!(list.json()["items"], json!([]), "nothing was stored");

    switch.0.store(true, Ordering::SeqCst);
    let first = app
        .send(
            json(Method::POST, "/api/v1/tasks", &body)
                .authed()
                .with_key("k-1"),
        )
        .await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text());
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = app
        .send(
            json(Method::POST, "/api/tasks", &body)
                .authed()
                .with_key("k-1"),
        )
        .await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.text());
    assert_eq!(again.json()["id"], first.json()["id"]);
}

trait WithKey {
    fn with_key(self, key: &str) -> Self;
}

impl WithKey for axum::http::Request<axum::body::Body> {
    fn with_key(mut self, key: &str) -> Self {
        self.headers_mut()
            .insert("idempotency-key", key.parse().unwrap());
        self
    }
}
