//! `POST /api/tasks`: the submit route of the service this project re-implements, kept for the
//! clients written against it (a chat bot, and that service's own end-to-end test).
//!
//! It is an alias of `POST /api/v1/tasks`: the same token, body, validation, limits and
//! `Idempotency-Key`, and errors in the same JSON shape (which also has an `error` key, as
//! those clients expect). Only the success body differs: the original's
//! `{"status": "accepted", "message", "pod_name"}`, plus the task's `id`; the `Location`
//! header points at the task resource.

use ao_core::task::TaskId;
use ao_core::validation::TaskRequest;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::tasks::{location, submit, submitted_response};

/// The original service's answer to a submission.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// Always `accepted`.
    #[schema(example = "accepted")]
    pub status: String,
    /// A sentence for people.
    pub message: String,
    /// The name the task's pod has with the Kubernetes runtime (`claude-worker-<id>`), known
    /// as soon as the task is accepted; `null` with the local runtime, whose workers are
    /// processes named only once they start (see the task's `worker`).
    pub pod_name: Option<String>,
    /// The task's id; its resource is `/api/v1/tasks/{id}` (the `Location` header).
    pub id: TaskId,
}

/// Submit a task (compatibility alias of `POST /api/v1/tasks` for the original service's
/// clients).
#[utoipa::path(post, path = "/api/tasks", tag = "tasks", operation_id = "create_task_compat",
    request_body = TaskRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe submission key")),
    responses(
        (status = 202, description = "Accepted and queued", body = Accepted, headers(("Location" = String))),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 409, description = "Idempotency key reused with a different body", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Invalid field", body = ErrorBody),
        (status = 429, description = "Queue full", body = ErrorBody, headers(("Retry-After" = u64))),
        (status = 503, description = "The built-in agent cannot run on this server (code `agent_unavailable`; the message says how to fix it); nothing was stored", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<TaskRequest>,
) -> Result<Response, ApiError> {
    let submitted = submit(&state, &headers, req).await?;
    let id = submitted.task.id;
    let pod_name = state.runtime.worker_name(id);
    let message = match &pod_name {
        Some(pod) => format!("task {id} accepted; pod {pod} will run it"),
        None => format!("task {id} accepted"),
    };
    let body = Accepted {
        status: "accepted".into(),
        message,
        pod_name,
        id,
    };
    Ok(submitted_response(
        Json(body).into_response(),
        &location(id),
        submitted.replayed,
    ))
}
