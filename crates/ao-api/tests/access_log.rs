//! The access log: one `access` event per request, with `status` and `latency_ms`, inside a
//! `request` span that carries `method` and the matched `route` (the template, so task ids
//! and query strings never reach the log).

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use support::{App, Authed, empty};

/// Collects what the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn each_request_is_logged_with_method_route_status_and_latency() {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = App::new().await;
    let id = app.submit(json!({"prompt": "secret prompt text"})).await;
    let r = app
        .send(empty(Method::GET, &format!("/api/v1/tasks/{id}?x=1")).authed())
        .await;
    assert_eq!(r.status, StatusCode::OK);
    app.send(empty(Method::GET, "/no/such/route")).await;

    let lines = out.lines();
    let access: Vec<&Value> = lines.iter().filter(|l| l["target"] == "access").collect();
    let summary: Vec<(String, String, u64)> = access
        .iter()
        .map(|l| {
            assert!(l["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{l}");
            assert_eq!(l["span"]["name"], "request", "{l}");
            (
                l["span"]["method"].as_str().unwrap().to_string(),
                l["span"]["route"].as_str().unwrap().to_string(),
                l["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("POST".into(), "/api/v1/tasks".into(), 202),
            ("GET".into(), "/api/v1/tasks/{id}".into(), 200),
            ("GET".into(), "unmatched".into(), 404),
        ]
    );
    // Lines logged while handling a request carry its span, and the task id.
    let accepted = lines
        .iter()
        .find(|l| l["message"] == "task accepted")
        .expect("task accepted line");
    assert_eq!(accepted["span"]["route"], "/api/v1/tasks");
    assert_eq!(accepted["task_id"], id.to_string());
    let all = lines
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!all.contains("secret prompt text"), "the prompt was logged");
    assert!(!all.contains(support::TOKEN), "the token was logged");
    assert!(!all.contains("x=1"), "a raw path was logged");
}
