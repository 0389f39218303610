//! Callbacks from workers: batches of agent events and the final result. A worker proves
//! itself with its task's own token (handed to it at launch, stored only as a hash), so a
//! worker can write to its own task and nothing else.
//!
//! The token is checked before anything else, the body included: every failure (no token, a
//! wrong one, an id that is malformed or unknown) is the same 401, so an outsider learns
//! neither whether a task exists nor anything else, and cannot make the server buffer a body.
//! Only then is the body read, within [`EVENTS_BODY_LIMIT`] or [`RESULT_BODY_LIMIT`] (413
//! past it).

use ao_core::task::{Task, TaskId, TaskResult};
use ao_core::token;
use ao_core::validation::ValidationError;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use tracing::{debug, info};

use crate::auth::bearer;
use crate::error::{ApiError, ErrorBody};
use crate::extract::read_json;
use crate::{AppState, EVENTS_BODY_LIMIT, RESULT_BODY_LIMIT};

pub use ao_core::worker::{EventAck, EventBatch};

/// Authenticate the worker of the task in the path, then refuse a task that has already finished.
/// Nothing about the task is revealed before the token matched: every failure is a 401.
async fn authorize(
    state: &AppState,
    path: Result<Path<String>, PathRejection>,
    headers: &HeaderMap,
) -> Result<(TaskId, Task), ApiError> {
    let given = bearer(headers).ok_or(ApiError::Unauthorized)?;
    // A path that does not even decode is one more id that cannot be right.
    let id: TaskId = path
        .ok()
        .and_then(|Path(raw)| raw.parse().ok())
        .ok_or(ApiError::Unauthorized)?;
    // An unknown task compares against an empty hash, which never matches, so both cases do
    // the same work.
    let stored = state.store.worker_token_hash(id).await?.unwrap_or_default();
    if !token::matches(given, &stored) {
        return Err(ApiError::Unauthorized);
    }
    let task = state.store.get(id).await?.ok_or(ApiError::Unauthorized)?;
    if task.status.is_terminal() {
        return Err(ApiError::Conflict(format!(
            "task has already finished ({})",
            task.status
        )));
    }
    Ok((id, task))
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::Validation(ValidationError {
        field: field.into(),
        message: message.into(),
    })
}

/// Append agent events (worker only).
#[utoipa::path(post, path = "/api/v1/tasks/{id}/worker/events", tag = "worker",
    params(("id" = String, Path, description = "Task id")),
    request_body = EventBatch,
    responses((status = 200, body = EventAck), (status = 401, body = ErrorBody),
              (status = 409, description = "Task already finished", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("worker_token" = [])))]
pub async fn post_events(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<EventAck>, ApiError> {
    let (id, _) = authorize(&state, path, &headers).await?;
    let batch: EventBatch = read_json(&headers, body, EVENTS_BODY_LIMIT).await?;
    if batch.first_seq < 1 {
        return Err(invalid("first_seq", "must be at least 1"));
    }
    if batch.events.len() > EventBatch::MAX_EVENTS {
        return Err(invalid(
            "events",
            &format!("at most {} events per batch", EventBatch::MAX_EVENTS),
        ));
    }
    if let Some(i) = batch.events.iter().position(|e| !e.is_object()) {
        return Err(invalid(
            &format!("events[{i}]"),
            "every event must be a JSON object",
        ));
    }
    // Skipping what the store already has and appending the rest is one atomic store
    // operation, so a resent batch racing its first copy is stored once.
    let last_seq = state
        .store
        .append_events_at(id, batch.first_seq, &batch.events)
        .await?;
    debug!(task_id = %id, received = batch.events.len(), first_seq = batch.first_seq, last_seq, "worker events");
    Ok(Json(EventAck { last_seq }))
}

/// Report the task's result (worker only).
#[utoipa::path(put, path = "/api/v1/tasks/{id}/worker/result", tag = "worker",
    params(("id" = String, Path, description = "Task id")),
    request_body = TaskResult,
    responses((status = 204), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("worker_token" = [])))]
pub async fn put_result(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let (id, _) = authorize(&state, path, &headers).await?;
    let result: TaskResult = read_json(&headers, body, RESULT_BODY_LIMIT).await?;
    state.store.set_result(id, &result).await?;
    info!(task_id = %id, outcome = %result.outcome, cost_usd = ?result.cost_usd, turns = ?result.num_turns, "worker reported its result");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use ao_core::worker::Outcome;
    use utoipa::OpenApi;

    #[test]
    fn the_api_document_names_every_outcome() {
        let doc = serde_json::to_value(crate::openapi::ApiDoc::openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let listed: Vec<&str> = schemas["Outcome"]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("no Outcome enum in {:#}", schemas["Outcome"]))
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(listed, Outcome::ALL.map(Outcome::as_str));
        assert_eq!(
            schemas["TaskResult"]["properties"]["outcome"]["$ref"],
            "#/components/schemas/Outcome"
        );
        assert!(schemas["EventBatch"]["properties"]["first_seq"].is_object());
    }
}
