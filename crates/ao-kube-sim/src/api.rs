//! The REST routes: discovery (enough for `kubectl`), pods (create, get, list, watch, delete,
//! `log`, `status`) and secrets (create and delete only — reading secrets is `403 Forbidden`,
//! as the worker's RBAC has it).

use std::collections::HashMap;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::StatusCode;
use k8s_openapi::List;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroupList, APIResource, APIResourceList, APIVersions, DeleteOptions, ListMeta,
    ServerAddressByClientCIDR,
};

use crate::Sim;
use crate::objects;
use crate::selector::Selector;
use crate::status::ApiError;

type Q = Query<HashMap<String, String>>;

pub fn router(sim: Sim) -> Router {
    let forbidden =
        || async { ApiError::forbidden("secrets are create/delete only for this service account") };
    Router::new()
        .route("/api", get(api_versions))
        .route(
            "/apis",
            get(|| async { axum::Json(APIGroupList { groups: vec![] }) }),
        )
        .route("/api/v1", get(api_resources))
        .route(
            "/api/v1/namespaces/{ns}/pods",
            get(list_or_watch).post(create_pod),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}",
            get(get_pod).delete(delete_pod),
        )
        .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(pod_log))
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/status",
            get(get_pod).put(put_status).patch(patch_status),
        )
        .route(
            "/api/v1/namespaces/{ns}/secrets",
            post(create_secret).get(forbidden),
        )
        .route(
            "/api/v1/namespaces/{ns}/secrets/{name}",
            get(forbidden)
                .put(forbidden)
                .patch(forbidden)
                .delete(delete_secret),
        )
        .fallback(|| async {
            ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            sim.clone(),
            crate::faults::layer,
        ))
        .with_state(sim)
}

async fn api_versions() -> axum::Json<APIVersions> {
    axum::Json(APIVersions {
        versions: vec!["v1".into()],
        server_address_by_client_cidrs: vec![ServerAddressByClientCIDR {
            client_cidr: "0.0.0.0/0".into(),
            server_address: String::new(),
        }],
    })
}

fn resource(name: &str, kind: &str, verbs: &[&str]) -> APIResource {
    APIResource {
        name: name.into(),
        kind: kind.into(),
        namespaced: true,
        singular_name: String::new(),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    }
}

async fn api_resources() -> axum::Json<APIResourceList> {
    axum::Json(APIResourceList {
        group_version: "v1".into(),
        resources: vec![
            resource("pods", "Pod", &["create", "delete", "get", "list", "watch"]),
            resource("pods/log", "Pod", &["get"]),
            resource("pods/status", "Pod", &["get", "patch", "update"]),
            resource("secrets", "Secret", &["create", "delete"]),
        ],
    })
}

fn json<T: serde::Serialize>(code: StatusCode, v: &T) -> Response {
    (code, axum::Json(v)).into_response()
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

async fn create_pod(
    State(sim): State<Sim>,
    Path(ns): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let pod: Pod = parse(&body)?;
    let stored = objects::create_pod(&sim, &ns, pod)?;
    Ok(json(StatusCode::CREATED, &stored))
}

async fn get_pod(
    State(sim): State<Sim>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let pod = sim
        .pod(&ns, &name)
        .ok_or_else(|| ApiError::not_found("pods", &name))?;
    Ok(json(StatusCode::OK, &pod))
}

async fn list_or_watch(
    State(sim): State<Sim>,
    Path(ns): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let selector = Selector::new(
        q.get("labelSelector").map(String::as_str),
        q.get("fieldSelector").map(String::as_str),
    );
    if matches!(q.get("watch").map(String::as_str), Some("true" | "1")) {
        return Ok(crate::watch::watch(sim, ns, selector, &q));
    }
    let (items, rv) = {
        let st = sim.lock();
        let items: Vec<Pod> = st
            .pods
            .iter()
            .filter(|((n, _), r)| *n == ns && selector.matches(&r.pod))
            .map(|(_, r)| r.pod.clone())
            .collect();
        (items, st.rv)
    };
    // `limit` is accepted and ignored: the whole list comes in one page, with no continue
    // token, which clients must handle anyway.
    let list = List::<Pod> {
        items,
        metadata: ListMeta {
            resource_version: Some(rv.to_string()),
            ..Default::default()
        },
    };
    Ok(json(StatusCode::OK, &list))
}

async fn delete_pod(
    State(sim): State<Sim>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Q,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut grace = q
        .get("gracePeriodSeconds")
        .and_then(|g| g.parse::<i64>().ok());
    if grace.is_none() && !body.is_empty() {
        let opts: DeleteOptions = parse(&body)?;
        grace = opts.grace_period_seconds;
    }
    let grace = match grace {
        Some(g) => g,
        None => sim
            .pod(&ns, &name)
            .and_then(|p| p.spec.and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30),
    };
    let pod = objects::delete_pod(&sim, &ns, &name, grace)?;
    Ok(json(StatusCode::OK, &pod))
}

async fn pod_log(
    State(sim): State<Sim>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    let (pod, logs) = {
        let st = sim.lock();
        let rec = st
            .pods
            .get(&(ns.clone(), name.clone()))
            .ok_or_else(|| ApiError::not_found("pods", &name))?;
        (rec.pod.clone(), rec.logs.clone())
    };
    let state = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.clone());
    let started = state
        .as_ref()
        .is_some_and(|s| s.running.is_some() || s.terminated.is_some());
    if !started {
        let container = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .map(|c| c.name.clone())
            .unwrap_or_default();
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    }
    let follow = matches!(q.get("follow").map(String::as_str), Some("true" | "1"));
    let body = Body::from_stream(logs.stream(follow));
    Ok(([(http::header::CONTENT_TYPE, "text/plain")], body).into_response())
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match (target, patch) {
        (serde_json::Value::Object(t), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

async fn put_status(
    State(sim): State<Sim>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let new: Pod = parse(&body)?;
    let pod = objects::mutate_pod(&sim, &ns, &name, |p| p.status = new.status)
        .ok_or_else(|| ApiError::not_found("pods", &name))?;
    Ok(json(StatusCode::OK, &pod))
}

async fn patch_status(
    State(sim): State<Sim>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let patch: serde_json::Value = parse(&body)?;
    let mut err = None;
    let pod = objects::mutate_pod(&sim, &ns, &name, |p| {
        let mut v = serde_json::to_value(&*p).unwrap_or_default();
        merge(&mut v, &patch);
        match serde_json::from_value::<Pod>(v) {
            Ok(np) => p.status = np.status,
            Err(e) => err = Some(ApiError::bad_request(e.to_string())),
        }
    })
    .ok_or_else(|| ApiError::not_found("pods", &name))?;
    if let Some(e) = err {
        return Err(e);
    }
    Ok(json(StatusCode::OK, &pod))
}

async fn create_secret(
    State(sim): State<Sim>,
    Path(ns): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let secret: Secret = parse(&body)?;
    let stored = objects::create_secret(&sim, &ns, secret)?;
    Ok(json(StatusCode::CREATED, &stored))
}

async fn delete_secret(
    State(sim): State<Sim>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let gone = objects::delete_secret(&sim, &ns, &name)?;
    Ok(json(StatusCode::OK, &gone))
}
