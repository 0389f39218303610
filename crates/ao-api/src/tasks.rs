//! Task routes: submit, list, get, cancel.

use ao_core::lifecycle::TaskStatus;
use ao_core::store::{Created, ListQuery};
use ao_core::task::{NewTask, Task, TaskId, TransitionRecord};
use ao_core::validation::{TaskRequest, ValidationError};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::info;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use crate::extract::JsonBody;

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;
/// Most `label=` filters one list request may carry.
pub const MAX_LABEL_FILTERS: usize = 20;
/// Longest prompt search text (`q=`).
pub const MAX_SEARCH_CHARS: usize = 200;

/// A task as the API shows it: the stored task, plus what the runtime can tell about it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskView {
    #[serde(flatten)]
    pub task: Task,
    /// The name of the task's pod, known from admission on, with the Kubernetes runtime;
    /// absent with the local runtime.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
}

impl TaskView {
    pub fn new(state: &AppState, task: Task) -> Self {
        let pod_name = state.runtime.worker_name(task.id);
        TaskView { task, pod_name }
    }
}

/// A task with its status history.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskDetail {
    #[serde(flatten)]
    pub task: TaskView,
    /// Every status change, oldest first.
    pub history: Vec<TransitionRecord>,
}

/// A page of tasks, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskPage {
    pub items: Vec<TaskView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Validation(ValidationError {
        field: field.into(),
        message: message.into(),
    })
}

/// Parse a task id from the path; an id that cannot exist is simply not found.
pub(crate) fn task_id(raw: &str) -> Result<TaskId, ApiError> {
    raw.parse().map_err(|_| ApiError::not_found_task())
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .map_err(|_| invalid("Idempotency-Key", "must be printable ASCII"))?
        .trim();
    if key.is_empty() || key.len() > 255 {
        return Err(invalid("Idempotency-Key", "must be 1-255 characters"));
    }
    Ok(Some(key.to_string()))
}

/// Submit a task.
#[utoipa::path(post, path = "/api/v1/tasks", tag = "tasks",
    request_body = TaskRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Repeat-safe submission key")),
    responses(
        (status = 202, description = "Accepted and queued", body = TaskView, headers(("Location" = String))),
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
    let replayed = submitted.replayed;
    let location = location(submitted.task.id);
    let view = TaskView::new(&state, submitted.task);
    Ok(submitted_response(
        Json(view).into_response(),
        &location,
        replayed,
    ))
}

/// A task that [`submit`] stored (or found again, for a repeated `Idempotency-Key`).
pub(crate) struct Submitted {
    pub task: Task,
    pub replayed: bool,
}

/// Validate, admit and store a task, then wake the scheduler: what every submit route does.
pub(crate) async fn submit(
    state: &AppState,
    headers: &HeaderMap,
    req: TaskRequest,
) -> Result<Submitted, ApiError> {
    let key = idempotency_key(headers)?;
    let spec = req.validate(&state.limits).map_err(ApiError::Validation)?;
    state.runtime.admit(&spec).map_err(ApiError::Validation)?;
    // Nothing is stored when the agent can't run: the same request (and Idempotency-Key)
    // may simply be sent again once it can.
    if let Some(why) = state.readiness.agent_unavailable().await {
        return Err(ApiError::AgentUnavailable(why));
    }
    let canonical = serde_json::to_vec(&spec).map_err(|e| ApiError::Internal(Box::new(e)))?;
    let new = NewTask {
        id: TaskId::new(),
        spec,
        idempotency_key: key,
        request_hash: hex::encode(Sha256::digest(&canonical)),
        created_at: Utc::now(),
    };
    let (task, replayed) = match state.store.create(new, state.max_queued).await? {
        Created::New(t) => (t, false),
        Created::Existing(t) => (t, true),
    };
    if !replayed {
        state.metrics.created.inc();
        info!(task_id = %task.id, labels = task.spec.labels.len(), repository = task.spec.repository.is_some(), "task accepted");
        state.scheduler.poke();
    }
    Ok(Submitted { task, replayed })
}

/// The path of a task's resource.
pub(crate) fn location(id: TaskId) -> String {
    format!("/api/v1/tasks/{id}")
}

/// A submit route's answer: 202 with `body`, a `Location` header, and `Idempotent-Replayed`
/// when an earlier submission was returned.
pub(crate) fn submitted_response(body: Response, location: &str, replayed: bool) -> Response {
    let mut resp = (StatusCode::ACCEPTED, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(location).expect("ascii location"),
    );
    if replayed {
        h.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

/// Parse the list route's query string (`status`, `label`, `limit`, `cursor`, `q`); the
/// dashboard's tasks page takes the same parameters.
pub(crate) fn list_query(raw: &str) -> Result<ListQuery, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
        .map_err(|e| ApiError::BadRequest(format!("malformed query string: {e}")))?;
    let mut q = ListQuery {
        limit: DEFAULT_PAGE,
        ..Default::default()
    };
    for (k, v) in pairs {
        match k.as_str() {
            "status" => {
                q.status = Some(v.parse().map_err(|e: ao_core::lifecycle::UnknownStatus| {
                    invalid("status", e.to_string())
                })?)
            }
            "label" => {
                if q.labels.len() == MAX_LABEL_FILTERS {
                    return Err(invalid(
                        "label",
                        format!("at most {MAX_LABEL_FILTERS} label filters per request"),
                    ));
                }
                let (lk, lv) = v
                    .split_once('=')
                    .ok_or_else(|| invalid("label", "must be key=value"))?;
                q.labels.push((lk.to_string(), lv.to_string()));
            }
            "limit" => {
                let n: usize = v
                    .parse()
                    .map_err(|_| invalid("limit", "must be a positive integer"))?;
                if n == 0 {
                    return Err(invalid("limit", "must be a positive integer"));
                }
                q.limit = n.min(MAX_PAGE);
            }
            "cursor" => q.cursor = Some(v),
            "q" => {
                if v.chars().count() > MAX_SEARCH_CHARS {
                    return Err(invalid(
                        "q",
                        format!("at most {MAX_SEARCH_CHARS} characters"),
                    ));
                }
                q.search = Some(v).filter(|v| !v.is_empty());
            }
            other => {
                return Err(invalid(
                    other,
                    "unknown query parameter (expected status, label, limit, cursor, q)",
                ));
            }
        }
    }
    Ok(q)
}

/// List tasks, newest first.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks",
    params(
        ("status" = Option<TaskStatus>, Query, description = "Only tasks in this status"),
        ("label" = Option<Vec<String>>, Query, description = "`key=value`; repeat to require several"),
        ("limit" = Option<usize>, Query, description = "Page size, default 50, capped at 200"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("q" = Option<String>, Query, description = "Only tasks whose prompt contains this text (ASCII case ignored), at most 200 characters"),
    ),
    responses((status = 200, body = TaskPage), (status = 422, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<TaskPage>, ApiError> {
    let q = list_query(raw.as_deref().unwrap_or(""))?;
    let page = state.store.list(&q).await?;
    Ok(Json(TaskPage {
        items: page
            .items
            .into_iter()
            .map(|t| TaskView::new(&state, t))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Get one task with its history.
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks",
    params(("id" = String, Path, description = "Task id")),
    responses((status = 200, body = TaskDetail), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TaskDetail>, ApiError> {
    let id = task_id(&id)?;
    let task = state
        .store
        .get(id)
        .await?
        .ok_or_else(ApiError::not_found_task)?;
    let history = state.store.history(id).await?;
    Ok(Json(TaskDetail {
        task: TaskView::new(&state, task),
        history,
    }))
}

/// Cancel a queued or running task.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/cancel", tag = "tasks",
    params(("id" = String, Path, description = "Task id")),
    responses(
        (status = 202, description = "Cancelled, or stopping (`cancel_requested`)", body = TaskView),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Already finished", body = ErrorBody),
        (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TaskView>), ApiError> {
    let id = task_id(&id)?;
    let task = state.store.request_cancel(id).await?;
    info!(task_id = %id, status = %task.status, "cancel requested");
    if task.status.is_terminal() {
        state.metrics.observe_finished(&task);
    }
    state.scheduler.poke();
    Ok((StatusCode::ACCEPTED, Json(TaskView::new(&state, task))))
}
