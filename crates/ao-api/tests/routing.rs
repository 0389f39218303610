//! Routing through the whole router: unknown routes and wrong methods answer in the JSON
//! error shape, and `POST /api/tasks` is the original service's submit route.

mod support;

use axum::http::{Method, StatusCode, header};
use serde_json::json;
use support::{App, Authed, Options, empty, json};

#[tokio::test]
async fn unknown_routes_are_json_404s() {
    let app = App::new().await;
    // `/` is the dashboard (tests/dashboard.rs).
    for uri in [
        "/api",
        "/api/v2/tasks",
        "/api/tasks/x",
        "/nope?x=1",
        "/tasks",
    ] {
        let r = app.send(empty(Method::GET, uri).authed()).await;
        r.error(StatusCode::NOT_FOUND, "not_found");
    }
    // A well-formed id that does not exist, and one that cannot exist.
    for uri in [
        "/api/v1/tasks/0196f6c1-0000-7000-8000-000000000000",
        "/api/v1/tasks/not-an-id",
    ] {
        let r = app.send(empty(Method::GET, uri).authed()).await;
        let e = r.error(StatusCode::NOT_FOUND, "not_found");
        assert_eq!(e["message"], "task not found");
    }
}

#[tokio::test]
async fn wrong_methods_are_json_405s() {
    let app = App::new().await;
    let cases = [
        (Method::GET, "/api/tasks"),
        (Method::PUT, "/api/tasks"),
        (Method::DELETE, "/api/tasks"),
        (Method::PATCH, "/api/tasks"),
        (Method::DELETE, "/api/v1/tasks"),
        (Method::PUT, "/api/v1/tasks"),
        (
            Method::POST,
            "/api/v1/tasks/0196f6c1-0000-7000-8000-000000000000",
        ),
        (Method::GET, "/api/v1/tasks/x/cancel"),
        (Method::GET, "/api/v1/tasks/x/worker/events"),
        (Method::POST, "/api/v1/tasks/x/worker/result"),
        (Method::POST, "/healthz"),
        (Method::POST, "/metrics"),
        (Method::DELETE, "/openapi.json"),
    ];
    for (method, uri) in cases {
        let r = app.send(empty(method.clone(), uri).authed()).await;
        r.error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        assert!(
            r.header("allow").is_some(),
            "{method} {uri}: no Allow header"
        );
    }
}

/// The chat bot's call: `POST /api/tasks {"task": ...}`; 202 is success.
#[tokio::test]
async fn the_alias_accepts_the_original_body_and_answers_the_original_shape() {
    let app = App::new().await;
    let r = app
        .send(
            json(
                Method::POST,
                "/api/tasks",
                &json!({"task": "Summarise the README"}),
            )
            .authed(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "accepted");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()));
    // The local runtime (like this fake) has no name before the worker runs.
    assert!(v.get("pod_name").is_some_and(|p| p.is_null()), "{v}");
    let id = v["id"].as_str().unwrap();
    assert_eq!(
        r.header(header::LOCATION.as_str()),
        Some(format!("/api/v1/tasks/{id}").as_str())
    );
    // The task is the same one the v1 API shows, with the prompt taken from `task`.
    let t = app
        .send(empty(Method::GET, &format!("/api/v1/tasks/{id}")).authed())
        .await;
    assert_eq!(t.status, StatusCode::OK);
    let t = t.json();
    assert_eq!(
        (t["status"].as_str(), t["prompt"].as_str()),
        (Some("queued"), Some("Summarise the README"))
    );
    assert!(t.get("pod_name").is_none(), "{t}");
}

#[tokio::test]
async fn pod_names_are_known_at_admission_on_every_task_route() {
    let app = App::with(Options {
        pod_names: true,
        ..Options::default()
    })
    .await;
    let r = app
        .send(json(Method::POST, "/api/tasks", &json!({"task": "x"})).authed())
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let v = r.json();
    let id = v["id"].as_str().unwrap().to_string();
    let pod = format!("fake-pod-{id}");
    assert_eq!(v["pod_name"], pod.as_str());
    assert!(v["message"].as_str().unwrap().contains(&pod), "{v}");

    let other = app.submit(json!({"prompt": "y"})).await;
    let get = app
        .send(empty(Method::GET, &format!("/api/v1/tasks/{id}")).authed())
        .await
        .json();
    assert_eq!(get["pod_name"], pod.as_str());
    assert!(get["history"].is_array());
    let list = app
        .send(empty(Method::GET, "/api/v1/tasks").authed())
        .await
        .json();
    let names: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["pod_name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, [format!("fake-pod-{other}"), pod.clone()]);
    let cancel = app
        .send(empty(Method::POST, &format!("/api/v1/tasks/{id}/cancel")).authed())
        .await;
    assert_eq!(cancel.status, StatusCode::ACCEPTED);
    assert_eq!(cancel.json()["pod_name"], pod.as_str());
}

#[tokio::test]
async fn the_alias_shares_idempotency_with_the_v1_route() {
    let app = App::new().await;
    let send = |uri: &'static str| {
        let mut req = json(Method::POST, uri, &json!({"task": "same"})).authed();
        req.headers_mut()
            .insert("idempotency-key", "k-1".parse().unwrap());
        app.send(req)
    };
    let first = send("/api/v1/tasks").await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let again = send("/api/tasks").await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json()["id"], first.json()["id"]);
}

#[tokio::test]
async fn the_openapi_document_describes_the_alias() {
    let app = App::new().await;
    let doc = app.send(empty(Method::GET, "/openapi.json")).await.json();
    let op = &doc["paths"]["/api/tasks"]["post"];
    assert!(op.is_object(), "no POST /api/tasks in the document");
    assert_eq!(
        op["responses"]["202"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Accepted"
    );
    let accepted = &doc["components"]["schemas"]["Accepted"]["properties"];
    for field in ["status", "message", "pod_name", "id"] {
        assert!(accepted.get(field).is_some(), "Accepted lacks {field}");
    }
    // Operation ids stay unique with the alias.
    let mut ids: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|p| p.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "duplicate operationId");
}
