//! The HTTP API of Agent Orchestrator.
//!
//! - [`tasks`]: submit, list, get and cancel tasks (`/api/v1/tasks`),
//! - [`output`]: a task's logs and its agent events (SSE), kept in the store,
//! - [`worker`]: the callbacks through which workers report events and results, each
//!   authenticated with its task's own token,
//! - [`health`]: liveness, readiness, metrics, and the OpenAPI document,
//! - [`auth`] and [`telemetry`]: bearer tokens, the access log and HTTP metrics.
//!
//! [`router`] builds the whole application from an [`AppState`]; tests call it without a
//! socket, and the binary serves it on a listener.

pub mod auth;
pub mod error;
pub mod extract;
pub mod health;
pub mod openapi;
pub mod output;
pub mod tasks;
pub mod telemetry;
pub mod worker;

use std::sync::Arc;

use ao_core::metrics::TaskMetrics;
use ao_core::scheduler::SchedulerHandle;
use ao_core::store::TaskStore;
use ao_core::task::TaskSpec;
use ao_core::validation::{Limits, ValidationError};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use prometheus_client::registry::Registry;

pub use auth::ApiTokens;
pub use error::ApiError;

/// A runtime-specific admission check (for example, a prompt too large for a pod spec).
pub type AdmitFn = Arc<dyn Fn(&TaskSpec) -> Result<(), ValidationError> + Send + Sync>;

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn TaskStore>,
    pub scheduler: SchedulerHandle,
    pub metrics: TaskMetrics,
    pub http_metrics: telemetry::HttpMetrics,
    pub registry: Arc<Registry>,
    pub limits: Limits,
    /// Queued tasks beyond which submissions get 429.
    pub max_queued: usize,
    pub admit: AdmitFn,
    pub tokens: ApiTokens,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
}

/// Largest body a worker callback may send.
pub const CALLBACK_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/v1/tasks", post(tasks::create).get(tasks::list))
        .route("/api/v1/tasks/{id}", get(tasks::get))
        .route("/api/v1/tasks/{id}/cancel", post(tasks::cancel))
        .route("/api/v1/tasks/{id}/logs", get(output::logs))
        .route("/api/v1/tasks/{id}/events", get(output::events))
        .route_layer(axum::middleware::from_fn_with_state(
            state.tokens.clone(),
            auth::require_token,
        ));
    let callbacks = Router::new()
        .route(
            "/api/v1/tasks/{id}/worker/events",
            post(worker::post_events),
        )
        .route("/api/v1/tasks/{id}/worker/result", put(worker::put_result))
        // Tool results can be large; workers batch them, so their bodies get a higher limit.
        .layer(axum::Extension(extract::BodyLimit(CALLBACK_BODY_LIMIT)))
        .layer(DefaultBodyLimit::max(CALLBACK_BODY_LIMIT));
    let open = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/health", get(health::health))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi));
    let limit = state.body_limit;
    api.merge(callbacks)
        .merge(open)
        .fallback(health::not_found)
        .method_not_allowed_fallback(health::method_not_allowed)
        .layer(axum::Extension(extract::BodyLimit(limit)))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.http_metrics.clone(),
            telemetry::observe,
        ))
        .with_state(state)
}
