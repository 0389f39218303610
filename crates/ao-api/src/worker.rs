//! Callbacks from workers: batches of agent events and the final result. A worker proves
//! itself with its task's own token (handed to it at launch, stored only as a hash), so a
//! worker can write to its own task and nothing else.

use ao_core::task::{Task, TaskId, TaskResult};
use ao_core::token::{constant_time_eq, hash};
use ao_core::validation::ValidationError;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use tracing::{debug, info};

use crate::AppState;
use crate::auth::bearer;
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;
use crate::tasks::task_id;

pub use ao_core::worker::{EventAck, EventBatch};

async fn authorize(
    state: &AppState,
    raw_id: &str,
    headers: &HeaderMap,
) -> Result<(TaskId, Task), ApiError> {
    let id = task_id(raw_id)?;
    let task = state
        .store
        .get(id)
        .await?
        .ok_or_else(ApiError::not_found_task)?;
    let stored = state
        .store
        .worker_token_hash(id)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let given = bearer(headers).ok_or(ApiError::Unauthorized)?;
    if !constant_time_eq(hash(given).as_bytes(), stored.as_bytes()) {
        return Err(ApiError::Unauthorized);
    }
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
    responses((status = 200, body = EventAck), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "Task already finished", body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("worker_token" = [])))]
pub async fn post_events(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    JsonBody(batch): JsonBody<EventBatch>,
) -> Result<Json<EventAck>, ApiError> {
    let (id, _) = authorize(&state, &raw, &headers).await?;
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
    let last = state.store.append_events(id, &[]).await?;
    if batch.first_seq > last + 1 {
        return Err(ApiError::Conflict(format!(
            "events must be contiguous: the server has up to {last}, the batch starts at {}",
            batch.first_seq
        )));
    }
    let skip = usize::try_from(last + 1 - batch.first_seq)
        .unwrap_or(0)
        .min(batch.events.len());
    let fresh = &batch.events[skip..];
    let last_seq = state.store.append_events(id, fresh).await?;
    debug!(task_id = %id, received = batch.events.len(), stored = fresh.len(), last_seq, "worker events");
    Ok(Json(EventAck { last_seq }))
}

/// Report the task's result (worker only).
#[utoipa::path(put, path = "/api/v1/tasks/{id}/worker/result", tag = "worker",
    params(("id" = String, Path, description = "Task id")),
    request_body = TaskResult,
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("worker_token" = [])))]
pub async fn put_result(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    JsonBody(result): JsonBody<TaskResult>,
) -> Result<StatusCode, ApiError> {
    let (id, _) = authorize(&state, &raw, &headers).await?;
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
