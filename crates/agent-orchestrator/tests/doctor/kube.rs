//! The Kubernetes checks. The API server is a stand-in serving just what the checks ask
//! (`/version`, the Secret's dry-run create, SelfSubjectAccessReviews), so each answer can be
//! chosen; the simulator (`ao-kube-sim`, which has no SelfSubjectAccessReview nor `/version`) and an address
//! nobody listens on show the rest. `deploy/rbac.yaml` is held to the runtime's list.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Run, base_env, doctor, vars};

const NS: &str = "agents";
const SECRET: &str = "claude-worker-secrets";

#[derive(Default)]
struct Cluster {
    namespaces: BTreeSet<String>,
    secrets: BTreeSet<String>,
    /// `verb resource[/sub]` the orchestrator is not allowed.
    denied: BTreeSet<String>,
    /// Query strings of the Secret creates (each must be a dry run).
    creates: Vec<String>,
}

type Shared = Arc<Mutex<Cluster>>;

fn status(code: u16, reason: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{reason} (stand-in)"), "reason": reason, "code": code});
    (StatusCode::from_u16(code).unwrap(), Json(body)).into_response()
}

async fn version() -> Response {
    Json(json!({"major": "1", "minor": "37", "gitVersion": "v1.37.2"})).into_response()
}

async fn create_secret(
    State(c): State<Shared>,
    UrlPath(ns): UrlPath<String>,
    RawQuery(q): RawQuery,
    Json(body): Json<Value>,
) -> Response {
    let mut c = c.lock().unwrap();
    c.creates.push(q.unwrap_or_default());
    if !c.namespaces.contains(&ns) {
        return status(404, "NotFound");
    }
    if c.secrets
        .contains(body["metadata"]["name"].as_str().unwrap_or_default())
    {
        return status(409, "AlreadyExists");
    }
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn review(State(c): State<Shared>, Json(mut body): Json<Value>) -> Response {
    let a = &body["spec"]["resourceAttributes"];
    let what = match a["subresource"].as_str() {
        Some(sub) => format!(
            "{} {}/{sub}",
            a["verb"].as_str().unwrap(),
            a["resource"].as_str().unwrap()
        ),
        None => format!(
            "{} {}",
            a["verb"].as_str().unwrap(),
            a["resource"].as_str().unwrap()
        ),
    };
    let allowed = a["namespace"] == NS && !c.lock().unwrap().denied.contains(&what);
    body["status"] = json!({"allowed": allowed});
    (StatusCode::CREATED, Json(body)).into_response()
}

async fn stand_in(c: Shared) -> SocketAddr {
    let app = axum::Router::new()
        .route("/version", get(version))
        .route("/api/v1/namespaces/{ns}/secrets", post(create_secret))
        .route(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            post(review),
        )
        .with_state(c);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn kube_doctor(dir: &Path, addr: SocketAddr) -> Run {
    let kubeconfig = dir.join("kubeconfig");
    ao_kube_sim::write_kubeconfig(&kubeconfig, addr, NS).unwrap();
    let mut env = base_env(dir);
    env.extend(vars(&[("KUBECONFIG", &kubeconfig)]));
    let data = dir.join("data");
    let data = data.to_str().unwrap();
    let args = [
        "--runtime",
        "kubernetes",
        "--callback-url",
        "http://127.0.0.1:9",
        "--data-dir",
        data,
    ];
    doctor(&args, &env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_namespace_the_secret_and_every_permission_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let c: Shared = Default::default();
    let addr = stand_in(c.clone()).await;
    // No namespace yet.
    let r = kube_doctor(dir.path(), addr);
    assert_eq!(r.code, 1, "{}", r.out);
    r.assert(
        "kubernetes_cluster",
        "[ok]",
        "the Kubernetes API server answers",
        "",
    );
    r.assert(
        "kubernetes_secret",
        "[FAIL]",
        "the namespace `agents` does not exist",
        "kubectl apply -k deploy/",
    );
    // The namespace, no Secret.
    c.lock().unwrap().namespaces.insert(NS.into());
    let r = kube_doctor(dir.path(), addr);
    assert_eq!(r.code, 1, "{}", r.out);
    r.assert(
        "kubernetes_secret",
        "[FAIL]",
        "`claude-worker-secrets` does not exist",
        "kubectl -n agents create secret generic claude-worker-secrets",
    );
    r.assert(
        "kubernetes_rbac",
        "[ok]",
        "every permission the runtime needs is granted",
        "",
    );
    // The Secret, and a Role without two verbs.
    c.lock().unwrap().secrets.insert(SECRET.into());
    c.lock()
        .unwrap()
        .denied
        .extend(["get pods/log".to_owned(), "delete secrets".to_owned()]);
    let r = kube_doctor(dir.path(), addr);
    assert_eq!(r.code, 1, "{}", r.out);
    r.assert(
        "kubernetes_secret",
        "[ok]",
        "`claude-worker-secrets` exists",
        "",
    );
    r.assert(
        "kubernetes_rbac",
        "[FAIL]",
        "not allowed in `agents`: get pods/log, delete secrets",
        "deploy/rbac.yaml",
    );
    r.assert(
        "callback_url",
        "[warn]",
        "does not answer",
        "start the server",
    );
    // Everything granted: only the callback warning is left.
    c.lock().unwrap().denied.clear();
    let r = kube_doctor(dir.path(), addr);
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(
        !r.has("claude_code") && !r.has("anthropic_api"),
        "{}",
        r.out
    );
    let creates = c.lock().unwrap().creates.clone();
    assert!(
        creates.iter().all(|q| q.contains("dryRun=All")),
        "a Secret create was not a dry run: {creates:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_blocks_and_an_older_api_server_only_warns() {
    let dir = tempfile::tempdir().unwrap();
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = kube_doctor(dir.path(), nobody);
    assert_eq!(r.code, 1, "{}", r.out);
    r.assert(
        "kubernetes_cluster",
        "[FAIL]",
        "does not answer",
        "check the kubeconfig",
    );
    assert!(!r.has("kubernetes_rbac"), "{}", r.out);
    // The simulator lists pods but has no SelfSubjectAccessReview.
    let sim = ao_kube_sim::Sim::new(ao_kube_sim::SimConfig::default());
    sim.put_secret(NS, SECRET, &[("ANTHROPIC_API_KEY", "sk-ant-sim-1234567")]);
    let addr = sim.serve_tcp().await.unwrap();
    let r = kube_doctor(dir.path(), addr);
    r.assert("kubernetes_cluster", "[ok]", "answers", "");
    r.assert(
        "kubernetes_rbac",
        "[warn]",
        "cannot ask the API server about permissions",
        "authorization.k8s.io/v1",
    );
}

#[test]
fn the_runtime_asks_for_exactly_what_deploy_grants() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/rbac.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut granted = BTreeSet::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let v = serde_yaml_ng::Value::deserialize(doc).unwrap();
        if v["kind"].as_str() != Some("Role") {
            continue;
        }
        for rule in v["rules"].as_sequence().unwrap() {
            for res in rule["resources"].as_sequence().unwrap() {
                for verb in rule["verbs"].as_sequence().unwrap() {
                    granted.insert(format!(
                        "{} {}",
                        verb.as_str().unwrap(),
                        res.as_str().unwrap()
                    ));
                }
            }
        }
    }
    let asked: BTreeSet<String> = ao_runtime_kube::rbac::REQUIRED_ACCESS
        .iter()
        .map(|a| match a.subresource {
            "" => format!("{} {}", a.verb, a.resource),
            sub => format!("{} {}/{sub}", a.verb, a.resource),
        })
        .collect();
    assert_eq!(asked, granted);
}

/// An API server that refuses the credentials (401 on every call) blocks, with the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_block() {
    let dir = tempfile::tempdir().unwrap();
    let app = axum::Router::new().fallback(|| async { status(401, "Unauthorized") });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let r = kube_doctor(dir.path(), addr);
    assert_eq!(
        r.code, 1,
        "doctor passed with a 401 on every call:\n{}",
        r.out
    );
    assert!(
        r.out.contains("[FAIL] kubernetes_cluster") && r.out.contains("refuses these credentials"),
        "{}",
        r.out
    );
}
