//! The HTTP API of Agent Orchestrator.
//!
//! - [`tasks`]: submit, list, get and cancel tasks (`/api/v1/tasks`),
//! - [`compat`]: `POST /api/tasks`, the original service's submit route, kept for its clients,
//! - [`output`]: a task's logs and its agent events (SSE), kept in the store,
//! - [`worker`]: the callbacks through which workers report events and results, each
//!   authenticated with its task's own token,
//! - [`health`]: liveness, readiness, metrics, and the OpenAPI document,
//! - [`readiness`]: whether the built-in agent can run (submissions get 503 while it can't)
//!   and the start-up checks `/readyz` shows,
//! - [`dashboard`]: the web dashboard at `/` (server-rendered pages, a login when the server
//!   has tokens, CSRF-protected forms, a strict CSP),
//! - [`auth`] and [`telemetry`]: bearer tokens, the access log (a request span) and HTTP
//!   metrics.
//!
//! [`router`] builds the whole application from an [`AppState`]; tests call it without a
//! socket, and the binary serves it on a listener.

pub mod auth;
pub mod compat;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod health;
pub mod openapi;
pub mod output;
pub mod readiness;
pub mod tasks;
pub mod telemetry;
pub mod worker;

use std::sync::Arc;

use ao_core::metrics::TaskMetrics;
use ao_core::runtime::Runtime;
use ao_core::scheduler::SchedulerHandle;
use ao_core::store::TaskStore;
use ao_core::validation::Limits;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use prometheus_client::registry::Registry;

pub use auth::ApiTokens;
pub use error::ApiError;
pub use readiness::{AlwaysReady, CheckStatus, Readiness, ReadinessCheck};

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn TaskStore>,
    /// The runtime the scheduler launches workers with: the API asks it to admit a task
    /// ([`Runtime::admit`]) and for the worker's name when it is known ahead
    /// ([`Runtime::worker_name`]).
    pub runtime: Arc<dyn Runtime>,
    pub scheduler: SchedulerHandle,
    pub metrics: TaskMetrics,
    pub http_metrics: telemetry::HttpMetrics,
    pub registry: Arc<Registry>,
    pub limits: Limits,
    /// Queued tasks beyond which submissions get 429.
    pub max_queued: usize,
    pub tokens: ApiTokens,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Whether the agent can run (submissions are refused while it can't), and the checks
    /// `/readyz` shows.
    pub readiness: Arc<dyn Readiness>,
}

/// Largest event batch a worker may send: 4 MiB. A batch holds at most 1000 events (the
/// worker sends at most 100), and most events are a few hundred bytes; the ones that carry a
/// tool's output are capped by Claude Code itself (about 30,000 characters for a shell command,
/// 25,000 tokens for a file read), so 4 MiB holds a batch with dozens of them. The body is only
/// read once the worker's token was accepted.
pub const EVENTS_BODY_LIMIT: usize = 4 * 1024 * 1024;
/// Largest result a worker may send: 64 KiB (the summary is capped at 4,000 characters and the
/// error at 1,000 by the worker; the rest are short fields).
pub const RESULT_BODY_LIMIT: usize = 64 * 1024;

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/v1/tasks", post(tasks::create).get(tasks::list))
        .route("/api/tasks", post(compat::create))
        .route("/api/v1/tasks/{id}", get(tasks::get))
        .route("/api/v1/tasks/{id}/cancel", post(tasks::cancel))
        .route("/api/v1/tasks/{id}/logs", get(output::logs))
        .route("/api/v1/tasks/{id}/events", get(output::events))
        .route_layer(axum::middleware::from_fn_with_state(
            state.tokens.clone(),
            auth::require_token,
        ));
    // Worker callbacks check their task's token themselves, before reading the body, and read
    // it within their own limits (EVENTS_BODY_LIMIT, RESULT_BODY_LIMIT).
    let callbacks = Router::new()
        .route(
            "/api/v1/tasks/{id}/worker/events",
            post(worker::post_events),
        )
        .route("/api/v1/tasks/{id}/worker/result", put(worker::put_result));
    let open = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/health", get(health::health))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi));
    let limit = state.body_limit;
    let dashboard = dashboard::router(&state);
    api.merge(callbacks)
        .merge(open)
        .merge(dashboard)
        .fallback(health::not_found)
        .method_not_allowed_fallback(health::method_not_allowed)
        .layer(axum::Extension(extract::BodyLimit(limit)))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.http_metrics.clone(),
            telemetry::observe,
        ))
        .layer(telemetry::access_log())
        .with_state(state)
}
