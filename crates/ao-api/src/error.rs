//! The API's one error type, mapped to a status code and a JSON body of one shape:
//! `{"error": {"code": "...", "message": "...", "field": "..."}}`.
//!
//! 4xx errors say what was wrong. 5xx errors are logged with their cause and tell the client
//! only that something failed.

use ao_core::store::StoreError;
use ao_core::validation::ValidationError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Validation(ValidationError),
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the queue is full ({limit} tasks waiting); retry later")]
    QueueFull { limit: usize, retry_after_secs: u64 },
    #[error("{0}")]
    Unavailable(String),
    /// The built-in agent cannot run on this server (no Claude Code, no API key): the message
    /// says what to fix.
    #[error("{0}")]
    AgentUnavailable(String),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The JSON error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `validation_failed`, `not_found`, `queue_full`,
    /// `agent_unavailable`.
    pub code: &'static str,
    pub message: String,
    /// The offending request field, for validation errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn not_found_task() -> Self {
        ApiError::NotFound("task not found".into())
    }

    /// The status code this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::QueueFull { .. } => (StatusCode::TOO_MANY_REQUESTS, "queue_full"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::AgentUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "agent_unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::not_found_task(),
            StoreError::AlreadyFinished(s) => {
                ApiError::Conflict(format!("task has already finished ({s})"))
            }
            StoreError::IdempotencyConflict => ApiError::Conflict(
                "the Idempotency-Key was already used for a different request".into(),
            ),
            StoreError::StatusChanged { actual, .. } => {
                ApiError::Conflict(format!("task is {actual}"))
            }
            StoreError::QueueFull { limit } => ApiError::QueueFull {
                limit,
                retry_after_secs: 5,
            },
            e @ StoreError::SequenceGap { .. } => ApiError::Conflict(e.to_string()),
            StoreError::InvalidCursor => ApiError::Validation(ValidationError {
                field: "cursor".into(),
                message: "is not a cursor returned by this server".into(),
            }),
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = %cause, source = ?cause.source(), "request failed");
        }
        let field = match &self {
            ApiError::Validation(v) => Some(v.field.clone()),
            _ => None,
        };
        let message = match &self {
            ApiError::Validation(v) => format!("{}: {}", v.field, v.message),
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message,
                field,
            },
        };
        let mut resp = (status, Json(body)).into_response();
        match &self {
            ApiError::QueueFull {
                retry_after_secs, ..
            } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            ApiError::Unauthorized => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        resp
    }
}
