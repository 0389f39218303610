//! The HTTP API through a real listener: every endpoint and every error code.

mod common;

use std::time::Duration;

use common::{TestApp, script};
use serde_json::{Value, json};

async fn error_of(r: reqwest::Response, status: u16) -> Value {
    assert_eq!(r.status(), status);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["code"].is_string() && body["error"]["message"].is_string(),
        "{body}"
    );
    body["error"].clone()
}

#[tokio::test]
async fn create_accepts_prompt_and_legacy_task_field() {
    let app = TestApp::spawn(&["--max-concurrency", "1"]).await;
    let r = app.post_json("/api/v1/tasks", json!({"prompt": "do it", "labels": {"team": "a"}, "model": "claude-x", "max_turns": 3, "timeout_seconds": 60})).await;
    assert_eq!(r.status(), 202);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let t: Value = r.json().await.unwrap();
    assert_eq!(loc, format!("/api/v1/tasks/{}", t["id"].as_str().unwrap()));
    assert_eq!(t["status"], "queued");
    assert_eq!(t["reason"], "submitted");
    assert_eq!(t["prompt"], "do it");
    assert_eq!(t["max_turns"], 3);
    let id = app.submit(json!({"task": "legacy body"})).await;
    assert_eq!(app.task(&id).await["prompt"], "legacy body");
    app.stop().await;
}

#[tokio::test]
async fn create_errors_name_the_problem() {
    let app = TestApp::spawn(&["--max-body-bytes", "2048"]).await;
    let raw = |body: &'static str, ct: &'static str| {
        app.client
            .post(app.url("/api/v1/tasks"))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let e = error_of(raw("{not json", "application/json").await.unwrap(), 400).await;
    assert_eq!(e["code"], "bad_request");
    let e = error_of(raw("{\"prompt\":\"x\"}", "text/plain").await.unwrap(), 415).await;
    assert_eq!(e["code"], "unsupported_media_type");
    for (body, field) in [
        (json!({}), "prompt"),
        (json!({"prompt": "  "}), "prompt"),
        (json!({"prompt": "x", "bogus": true}), "bogus"),
        (json!({"prompt": "x", "max_turns": "many"}), "max_turns"),
        (
            json!({"prompt": "x", "timeout_seconds": 0}),
            "timeout_seconds",
        ),
        (
            json!({"prompt": "x", "env": {"LD_PRELOAD": "/x.so"}}),
            "env.LD_PRELOAD",
        ),
        (
            json!({"prompt": "x", "env": {"BAD-NAME": "v"}}),
            "env.BAD-NAME",
        ),
        (
            json!({"prompt": "x", "repository": {"url": "https://u:p@github.com/o/r"}}),
            "repository.url",
        ),
        (
            json!({"prompt": "x", "repository": {"ref": "main"}}),
            "repository.url",
        ),
        (json!({"prompt": "x", "labels": {"k": 1}}), "labels.k"),
    ] {
        let e = error_of(app.post_json("/api/v1/tasks", body.clone()).await, 422).await;
        assert_eq!(e["code"], "validation_failed", "{body}");
        assert_eq!(e["field"], field, "{body}: {e}");
    }
    let big = "x".repeat(4096);
    let e = error_of(
        app.post_json("/api/v1/tasks", json!({"prompt": big})).await,
        413,
    )
    .await;
    assert_eq!(e["code"], "payload_too_large");
    // Nothing was stored by any of these.
    let list: Value = app.get("/api/v1/tasks").await.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    app.stop().await;
}

#[tokio::test]
async fn idempotency_key_returns_the_same_task() {
    let app = TestApp::spawn(&[]).await;
    let send = |body: Value| {
        app.client
            .post(app.url("/api/v1/tasks"))
            .header("idempotency-key", "abc-1")
            .json(&body)
            .send()
    };
    let a: Value = send(json!({"prompt": "p"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = send(json!({"prompt": "p"})).await.unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    let b: Value = r.json().await.unwrap();
    assert_eq!(a["id"], b["id"]);
    let e = error_of(send(json!({"prompt": "different"})).await.unwrap(), 409).await;
    assert_eq!(e["code"], "conflict");
    app.stop().await;
}

#[tokio::test]
async fn full_queue_answers_429_with_retry_after() {
    let app = TestApp::spawn(&["--max-concurrency", "1", "--max-queued", "1"]).await;
    let first = app
        .submit(json!({"prompt": "a", "env": {"SLEEP": "30"}}))
        .await;
    app.wait_for(&first, 10, |s| s == "running").await;
    app.submit(json!({"prompt": "b"})).await;
    let r = app.post_json("/api/v1/tasks", json!({"prompt": "c"})).await;
    assert_eq!(r.status(), 429);
    assert!(
        r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > 0
    );
    assert_eq!(error_of(r, 429).await["code"], "queue_full");
    app.cancel(&first).await;
    app.stop().await;
}

#[tokio::test]
async fn list_filters_paginates_and_validates() {
    let app = TestApp::spawn(&["--max-concurrency", "1"]).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let team = if i % 2 == 0 { "red" } else { "blue" };
        ids.push(app.submit(json!({"prompt": format!("p{i}"), "labels": {"team": team}, "env": {"SLEEP": "30"}})).await);
    }
    let page: Value = app.get("/api/v1/tasks?limit=2").await.json().await.unwrap();
    let got: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, vec![ids[4].as_str(), ids[3].as_str()]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let page2: Value = app
        .get(&format!("/api/v1/tasks?limit=2&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page2["items"][0]["id"], ids[2].as_str());
    let red: Value = app
        .get("/api/v1/tasks?label=team%3Dred")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(red["items"].as_array().unwrap().len(), 3);
    app.cancel(&ids[1]).await;
    let c: Value = app
        .get("/api/v1/tasks?status=cancelled")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["items"].as_array().unwrap().len(), 1);
    let capped: Value = app
        .get("/api/v1/tasks?limit=100000")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(capped["items"].as_array().unwrap().len(), 5);
    for (q, field) in [
        ("status=done", "status"),
        ("limit=0", "limit"),
        ("cursor=zz", "cursor"),
        ("label=nokv", "label"),
        ("colour=red", "colour"),
    ] {
        let e = error_of(app.get(&format!("/api/v1/tasks?{q}")).await, 422).await;
        assert_eq!(e["field"], field, "{q}");
    }
    for id in &ids {
        app.cancel(id).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn get_and_cancel_errors() {
    let app = TestApp::spawn(&[]).await;
    for path in [
        "/api/v1/tasks/0190f5d2-0000-7000-8000-000000000000",
        "/api/v1/tasks/not-a-uuid",
    ] {
        assert_eq!(
            error_of(app.get(path).await, 404).await["code"],
            "not_found"
        );
    }
    assert_eq!(
        error_of(
            app.cancel("0190f5d2-0000-7000-8000-000000000000").await,
            404
        )
        .await["code"],
        "not_found"
    );
    let id = app.submit(json!({"prompt": "quick"})).await;
    let t = app.wait_terminal(&id).await;
    assert_eq!(t["status"], "succeeded");
    assert_eq!(
        error_of(app.cancel(&id).await, 409).await["code"],
        "conflict"
    );
    assert_eq!(
        error_of(app.get("/nope").await, 404).await["code"],
        "not_found"
    );
    let r = app
        .client
        .delete(app.url("/api/v1/tasks"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(r, 405).await["code"], "method_not_allowed");
    app.stop().await;
}

#[tokio::test]
async fn logs_are_stored_and_followed() {
    let app = TestApp::spawn(&[]).await;
    let id = app
        .submit(json!({"prompt": "p", "env": {"SLEEP": "1"}}))
        .await;
    // Follow from the start: the stream ends by itself when the task ends.
    let follow = app
        .get(&format!("/api/v1/tasks/{id}/logs?follow=true"))
        .await;
    assert_eq!(follow.status(), 200);
    let text = tokio::time::timeout(Duration::from_secs(20), follow.text())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(text, format!("start {id}\nline two\ndone\n"));
    let t = app.task(&id).await;
    assert_eq!(t["status"], "succeeded");
    let after = app
        .get(&format!("/api/v1/tasks/{id}/logs?after=2"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(after, "done\n");
    assert_eq!(
        error_of(
            app.get(&format!("/api/v1/tasks/{id}/logs?follow=maybe"))
                .await,
            422
        )
        .await["code"],
        "validation_failed"
    );
    app.stop().await;
}

/// A worker that hands its callback token to the test, then waits to be told to finish.
const CALLBACK_WORKER: &str = r#"top="$AO_WORKSPACE/../../../.."
printf '%s' "$AO_CALLBACK_TOKEN" > "$top/token"
printf '%s' "$AO_CALLBACK_URL" > "$top/url"
i=0
while [ ! -f "$top/go" ] && [ "$i" -lt 600 ]; do sleep 0.1; i=$((i+1)); done
exit 0"#;

#[tokio::test]
async fn worker_callbacks_events_sse_and_result() {
    let dir = tempfile::tempdir().unwrap();
    let worker = script(dir.path(), "cb.sh", CALLBACK_WORKER);
    let args = common::serve_args(dir.path(), &worker, &[]);
    let app = TestApp::spawn_with(dir, args).await;
    let id = app.submit(json!({"prompt": "p"})).await;
    app.wait_for(&id, 10, |s| s == "running").await;
    let token_file = app.dir.path().join("token");
    for _ in 0..400 {
        if token_file.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token = std::fs::read_to_string(&token_file).unwrap();
    let cb_url = std::fs::read_to_string(app.dir.path().join("url")).unwrap();
    assert_eq!(cb_url, app.base);
    let events_url = app.url(&format!("/api/v1/tasks/{id}/worker/events"));
    let post = |tok: &str, body: Value| {
        app.client
            .post(&events_url)
            .bearer_auth(tok)
            .json(&body)
            .send()
    };
    let batch = json!({"first_seq": 1, "events": [{"type": "system", "subtype": "init"}, {"type": "assistant", "message": {"content": [{"type": "tool_use", "name": "Bash"}]}}]});
    assert_eq!(
        error_of(post("wrong-token", batch.clone()).await.unwrap(), 401).await["code"],
        "unauthorized"
    );
    let ack: Value = post(&token, batch.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ack["last_seq"], 2);
    // A resent batch is not stored twice; an overlapping one stores only what is new.
    let ack: Value = post(&token, batch).await.unwrap().json().await.unwrap();
    assert_eq!(ack["last_seq"], 2);
    let ack: Value = post(
        &token,
        json!({"first_seq": 2, "events": [{"type": "x"}, {"type": "user"}]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(ack["last_seq"], 3);
    assert_eq!(
        error_of(
            post(&token, json!({"first_seq": 9, "events": [{"type": "x"}]}))
                .await
                .unwrap(),
            409
        )
        .await["code"],
        "conflict"
    );
    assert_eq!(
        error_of(
            post(&token, json!({"first_seq": 4, "events": [1]}))
                .await
                .unwrap(),
            422
        )
        .await["field"],
        "events[0]"
    );
    // Replay with Last-Event-ID, non-following.
    let sse = app
        .client
        .get(app.url(&format!("/api/v1/tasks/{id}/events?follow=false")))
        .header("last-event-id", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(sse.headers()["content-type"], "text/event-stream");
    let text = sse.text().await.unwrap();
    assert!(text.contains("id: 2\nevent: assistant\n"), "{text}");
    assert!(
        text.contains("id: 3\nevent: user\n") && !text.contains("id: 1\n"),
        "{text}"
    );
    // Follow live: the stream ends with an `end` event after the task finishes.
    let live = app
        .client
        .get(app.url(&format!("/api/v1/tasks/{id}/events")))
        .send()
        .await
        .unwrap();
    let result = json!({"outcome": "answered", "summary": "42", "cost_usd": 0.25, "input_tokens": 10, "output_tokens": 5, "num_turns": 2});
    let r = app
        .client
        .put(app.url(&format!("/api/v1/tasks/{id}/worker/result")))
        .bearer_auth(&token)
        .json(&result)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    std::fs::write(app.dir.path().join("go"), "").unwrap();
    let text = tokio::time::timeout(Duration::from_secs(20), live.text())
        .await
        .unwrap()
        .unwrap();
    assert!(
        text.contains("event: system") && text.contains("event: end"),
        "{text}"
    );
    let t = app.wait_terminal(&id).await;
    assert_eq!(t["status"], "succeeded");
    assert_eq!(t["result"]["summary"], "42");
    assert_eq!(t["reason"], "answered");
    assert_eq!(
        error_of(
            post(
                &token,
                json!({"first_seq": 4, "events": [{"type": "late"}]})
            )
            .await
            .unwrap(),
            409
        )
        .await["code"],
        "conflict"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("ao_agent_cost_usd_total 0.25"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ao_task_outcomes_total{outcome=\"answered\"} 1"),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn health_metrics_and_openapi() {
    let app = TestApp::spawn(&[]).await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.text().await.unwrap(), "ready");
    assert_eq!(app.get("/health").await.text().await.unwrap(), "OK");
    let id = app.submit(json!({"prompt": "p"})).await;
    app.wait_terminal(&id).await;
    let m = app.get("/metrics").await.text().await.unwrap();
    for name in [
        "ao_tasks_created_total 1",
        "ao_tasks_finished_total{status=\"succeeded\"} 1",
        "ao_tasks{status=\"succeeded\"} 1",
        "ao_queue_depth 0",
        "ao_task_duration_seconds_count{status=\"succeeded\"} 1",
        "ao_task_queue_wait_seconds_count 1",
        "ao_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/tasks\",status=\"202\"} 1",
    ] {
        assert!(m.contains(name), "missing {name} in\n{m}");
    }
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/api/v1/tasks",
        "/api/v1/tasks/{id}",
        "/api/v1/tasks/{id}/cancel",
        "/api/v1/tasks/{id}/logs",
        "/api/v1/tasks/{id}/events",
        "/healthz",
        "/metrics",
    ] {
        assert!(doc["paths"][p].is_object(), "openapi lacks {p}");
    }
    assert!(
        doc["components"]["schemas"]["TaskRequest"]["oneOf"][0]["properties"]["prompt"].is_object()
    );
    app.stop().await;
}

#[tokio::test]
async fn tokens_protect_the_api_but_not_probes() {
    let app = TestApp::spawn(&[
        "--api-tokens",
        "s3cret-token-value-0001,other-token-value-0002",
    ])
    .await;
    let anon = |path: &str| app.client.get(app.url(path)).send();
    assert_eq!(
        error_of(anon("/api/v1/tasks").await.unwrap(), 401).await["code"],
        "unauthorized"
    );
    let r = app
        .client
        .get(app.url("/api/v1/tasks"))
        .bearer_auth("wrong-token-value-000000")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = app
        .client
        .get(app.url("/api/v1/tasks"))
        .bearer_auth("other-token-value-0002")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for p in ["/healthz", "/readyz", "/health", "/metrics"] {
        assert_eq!(anon(p).await.unwrap().status(), 200, "{p}");
    }
    app.submit(json!({"prompt": "authorized"})).await;
    app.stop().await;
}
