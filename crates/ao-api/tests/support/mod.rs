//! What the router-level tests share: the whole application over a fresh SQLite file and a
//! fake runtime, driven with `tower::ServiceExt::oneshot` (no socket, no scheduler loop, no
//! workers), plus request and response helpers.

#![allow(dead_code)]

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use ao_api::{ApiTokens, AppState};
use ao_core::metrics::TaskMetrics;
use ao_core::runtime::{Adoption, LaunchSpec, Runtime, RuntimeError};
use ao_core::scheduler::SchedulerHandle;
use ao_core::task::{Task, TaskId, TaskSpec, WorkerRef};
use ao_core::validation::{Limits, ValidationError};
use ao_store_sqlite::SqliteStore;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode, header};
use prometheus_client::registry::Registry;
use serde_json::Value;
use tower::ServiceExt;

/// The API token the test apps accept.
pub const TOKEN: &str = "router-test-token-0123456789";

/// A runtime that runs nothing: it names workers like the Kubernetes runtime when asked to,
/// and refuses at admission any prompt containing `unrunnable`.
pub struct FakeRuntime {
    pub pod_names: bool,
}

#[async_trait::async_trait]
impl Runtime for FakeRuntime {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn admit(&self, spec: &TaskSpec) -> Result<(), ValidationError> {
        if spec.prompt.contains("unrunnable") {
            return Err(ValidationError {
                field: "prompt".into(),
                message: "this runtime cannot run it".into(),
            });
        }
        Ok(())
    }

    fn worker_name(&self, id: TaskId) -> Option<String> {
        self.pod_names.then(|| format!("fake-pod-{id}"))
    }

    async fn launch(&self, _spec: LaunchSpec) -> Result<WorkerRef, RuntimeError> {
        Err(RuntimeError::Other(
            "the fake runtime launches nothing".into(),
        ))
    }

    async fn stop(&self, _id: TaskId, _grace: Duration) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn adopt(&self, _task: &Task) -> Result<Adoption, RuntimeError> {
        Ok(Adoption::NotFound)
    }

    async fn workers(&self) -> Result<Vec<TaskId>, RuntimeError> {
        Ok(Vec::new())
    }

    async fn cleanup(&self, _id: TaskId) -> Result<(), RuntimeError> {
        Ok(())
    }
}

/// How to build a test app.
pub struct Options {
    pub tokens: bool,
    pub pod_names: bool,
    pub max_queued: usize,
    pub body_limit: usize,
    pub readiness: Arc<dyn ao_api::Readiness>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tokens: true,
            pod_names: false,
            max_queued: 100,
            body_limit: 1024 * 1024,
            readiness: Arc::new(ao_api::AlwaysReady),
        }
    }
}

/// The application and its store; the temporary directory lives as long as it.
pub struct App {
    pub router: Router,
    pub store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

impl App {
    pub async fn new() -> App {
        Self::with(Options::default()).await
    }

    pub async fn with(o: Options) -> App {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("t.db")).await.unwrap());
        let mut registry = Registry::default();
        let metrics = TaskMetrics::register(&mut registry);
        let http_metrics = ao_api::telemetry::HttpMetrics::register(&mut registry);
        let state = AppState {
            store: store.clone(),
            runtime: Arc::new(FakeRuntime {
                pod_names: o.pod_names,
            }),
            scheduler: SchedulerHandle::default(),
            metrics,
            http_metrics,
            registry: Arc::new(registry),
            limits: Limits::default(),
            max_queued: o.max_queued,
            tokens: if o.tokens {
                ApiTokens::new([TOKEN])
            } else {
                ApiTokens::default()
            },
            body_limit: o.body_limit,
            readiness: o.readiness,
        };
        App {
            router: ao_api::router(state),
            store,
            _dir: dir,
        }
    }

    /// The SQLite file of the app's store (benches fill it directly).
    pub fn db_path(&self) -> std::path::PathBuf {
        self._dir.path().join("t.db")
    }

    /// Send one request through the router.
    pub async fn send(&self, req: Request<Body>) -> Reply {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        Reply {
            status,
            headers,
            bytes,
        }
    }

    /// Submit a task on `/api/v1/tasks` with the token; panics unless accepted.
    pub async fn submit(&self, body: Value) -> TaskId {
        let r = self
            .send(json(Method::POST, "/api/v1/tasks", &body).authed())
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        r.json()["id"].as_str().unwrap().parse().unwrap()
    }
}

/// A response, fully read.
pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub bytes: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// Assert the API's error shape with this status and code; returns the error object.
    pub fn error(&self, status: StatusCode, code: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(
            self.headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/json"),
        );
        let v = self.json();
        assert_eq!(v["error"]["code"], code, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        v["error"].clone()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Adds the bearer token to a request.
pub trait Authed {
    fn authed(self) -> Self;
    fn bearer(self, token: &str) -> Self;
}

impl Authed for Request<Body> {
    fn authed(self) -> Self {
        self.bearer(TOKEN)
    }

    fn bearer(mut self, token: &str) -> Self {
        self.headers_mut().insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        self
    }
}

pub fn empty(method: Method, uri: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap()
}

pub fn json(method: Method, uri: &str, body: &Value) -> Request<Body> {
    raw(method, uri, "application/json", body.to_string())
}

pub fn raw(method: Method, uri: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .unwrap()
}

/// A body that never ends: 64 KiB chunks of spaces for as long as it is read. Records
/// whether it was read at all and how many bytes it gave.
#[derive(Clone, Default)]
pub struct EndlessBody {
    pub polled: Arc<AtomicBool>,
    pub bytes: Arc<std::sync::atomic::AtomicUsize>,
}

impl EndlessBody {
    pub fn body(&self) -> Body {
        Body::from_stream(Endless(self.clone()))
    }

    pub fn was_polled(&self) -> bool {
        self.polled.load(Ordering::SeqCst)
    }

    pub fn bytes_read(&self) -> usize {
        self.bytes.load(Ordering::SeqCst)
    }
}

struct Endless(EndlessBody);

impl futures::Stream for Endless {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        const CHUNK: usize = 64 * 1024;
        self.0.polled.store(true, Ordering::SeqCst);
        self.0.bytes.fetch_add(CHUNK, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Bytes::from(vec![b' '; CHUNK]))))
    }
}
