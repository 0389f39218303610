//! Routes that stay open without a token: liveness, readiness, the compatibility `/health`,
//! Prometheus metrics and the OpenAPI document; plus the JSON 404/405 fallbacks.

use ao_core::scheduler::SetAside;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;

/// Liveness: the process serves requests.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = String)))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers. If recovery after a restart set tasks aside (it could not
/// settle them yet and retries them), the body says which, as JSON with `status: degraded`.
/// That stays 200: this instance still accepts and runs every other task, and taking it out
/// of service would only hide the stuck tasks from the people who must look at them; the
/// gauge `ao_recovery_set_aside` is the signal to alert on.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "`ready` as text, or the degraded detail as JSON",
            content((String = "text/plain"), (Degraded = "application/json"))),
        (status = 503, body = crate::error::ErrorBody)))]
pub async fn readyz(State(state): State<AppState>) -> Result<Response, ApiError> {
    state
        .store
        .ping()
        .await
        .map_err(|e| ApiError::Unavailable(format!("store unreachable: {e}")))?;
    Ok(readiness(state.scheduler.set_aside()))
}

/// The readiness body when some tasks are set aside.
#[derive(Debug, Serialize, ToSchema)]
pub struct Degraded {
    /// Always `degraded`.
    status: &'static str,
    set_aside: SetAsideDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SetAsideDetail {
    count: usize,
    /// Oldest first.
    tasks: Vec<SetAside>,
}

fn readiness(tasks: Vec<SetAside>) -> Response {
    if tasks.is_empty() {
        return "ready".into_response();
    }
    let set_aside = SetAsideDetail {
        count: tasks.len(),
        tasks,
    };
    Json(Degraded {
        status: "degraded",
        set_aside,
    })
    .into_response()
}

/// Compatibility with the original service: answers `OK`.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, body = String)))]
pub async fn health() -> &'static str {
    "OK"
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    if let Ok(counts) = state.store.count_by_status().await {
        state.metrics.set_counts(&counts);
    }
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &state.registry)
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "health", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn openapi(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(crate::openapi::document(&state.limits))
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

pub async fn method_not_allowed() -> Response {
    let body = crate::error::ErrorBody {
        error: crate::error::ErrorDetail {
            code: "method_not_allowed",
            message: "method not allowed on this route".into(),
            field: None,
        },
    };
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(r: Response) -> (StatusCode, String) {
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readiness_names_the_set_aside_tasks() {
        assert_eq!(
            body(readiness(Vec::new())).await,
            (StatusCode::OK, "ready".into())
        );
        let id = ao_core::TaskId::new();
        let aside = SetAside {
            task_id: id,
            reason: "runtime error: api down".into(),
            attempts: 2,
            since: chrono::Utc::now(),
        };
        let (status, text) = body(readiness(vec![aside])).await;
        assert_eq!(status, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["status"], "degraded");
        assert_eq!(v["set_aside"]["count"], 1);
        let t = &v["set_aside"]["tasks"][0];
        assert_eq!(t["task_id"], id.to_string());
        assert_eq!(
            (t["attempts"].as_u64(), t["reason"].as_str()),
            (Some(2), Some("runtime error: api down"))
        );
    }
}
