//! Limits of the list route: the number of `label=` filters is capped (a 422 naming `label`),
//! so no request can build a query too large for the store; page sizes are capped too.

mod support;

use ao_api::tasks::MAX_LABEL_FILTERS;
use axum::http::{Method, StatusCode};
use serde_json::json;
use support::{App, Authed, empty};

fn labels(n: usize) -> String {
    (0..n)
        .map(|i| format!("label=k{i}%3Dv{i}"))
        .collect::<Vec<_>>()
        .join("&")
}

#[tokio::test]
async fn up_to_the_cap_label_filters_are_applied() {
    let app = App::new().await;
    let mut tagged = serde_json::Map::new();
    for i in 0..MAX_LABEL_FILTERS {
        tagged.insert(format!("k{i}"), json!(format!("v{i}")));
    }
    let id = app
        .submit(json!({"prompt": "tagged", "labels": tagged}))
        .await;
    app.submit(json!({"prompt": "other", "labels": {"k0": "v0"}}))
        .await;
    let uri = format!("/api/v1/tasks?{}", labels(MAX_LABEL_FILTERS));
    let r = app.send(empty(Method::GET, &uri).authed()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let items = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], id.to_string());
}

#[tokio::test]
async fn more_label_filters_than_the_cap_are_a_422_naming_label() {
    let app = App::new().await;
    app.submit(json!({"prompt": "x"})).await;
    // 1000 is past the point (932) where SQLite's expression tree used to overflow into a 500.
    for n in [MAX_LABEL_FILTERS + 1, 1000, 2500] {
        let uri = format!("/api/v1/tasks?{}", labels(n));
        let e = app
            .send(empty(Method::GET, &uri).authed())
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(e["field"], "label");
        assert!(
            e["message"]
                .as_str()
                .unwrap()
                .contains(&MAX_LABEL_FILTERS.to_string()),
            "{e}"
        );
    }
}

#[tokio::test]
async fn bad_list_parameters_are_422s_naming_them() {
    let app = App::new().await;
    for (query, field) in [
        ("status=nope", "status"),
        ("label=novalue", "label"),
        ("limit=0", "limit"),
        ("limit=-3", "limit"),
        ("colour=red", "colour"),
        ("cursor=garbage", "cursor"),
    ] {
        let e = app
            .send(empty(Method::GET, &format!("/api/v1/tasks?{query}")).authed())
            .await
            .error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(e["field"], field, "{query}");
    }
}

#[tokio::test]
async fn page_sizes_are_capped() {
    let app = App::new().await;
    for i in 0..3 {
        app.submit(json!({ "prompt": format!("t{i}") })).await;
    }
    let page = app
        .send(empty(Method::GET, "/api/v1/tasks?limit=2").authed())
        .await
        .json();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = app
        .send(
            empty(
                Method::GET,
                &format!("/api/v1/tasks?limit=100000&cursor={cursor}"),
            )
            .authed(),
        )
        .await
        .json();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert!(rest.get("next_cursor").is_none());
}
