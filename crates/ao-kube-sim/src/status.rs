//! Kubernetes `Status` error bodies, built from the k8s-openapi type so the JSON has the
//! exact shape clients decode (`kind: Status`, `status: Failure`, `reason`, `code`).

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusDetails};

/// An API error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub name: Option<String>,
    pub kind: Option<&'static str>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            name: None,
            kind: None,
        }
    }
    pub fn not_found(kind: &'static str, name: &str) -> Self {
        ApiError {
            name: Some(name.into()),
            kind: Some(kind),
            ..Self::new(404, "NotFound", format!("{kind} \"{name}\" not found"))
        }
    }
    pub fn already_exists(kind: &'static str, name: &str) -> Self {
        ApiError {
            name: Some(name.into()),
            kind: Some(kind),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{kind} \"{name}\" already exists"),
            )
        }
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// The `Status` object for this error.
    pub fn status(&self) -> Status {
        Status {
            code: Some(i32::from(self.code)),
            message: Some(self.message.clone()),
            reason: Some(self.reason.to_string()),
            status: Some("Failure".into()),
            details: self.name.as_ref().map(|n| StatusDetails {
                name: Some(n.clone()),
                kind: self.kind.map(|k| k.to_lowercase() + "s"),
                ..Default::default()
            }),
            metadata: Default::default(),
        }
    }
}

/// Serialize a k8s-openapi `Status` with its `kind`/`apiVersion`.
pub fn status_json(s: &Status) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("kind".into(), "Status".into());
        o.insert("apiVersion".into(), "v1".into());
    }
    v
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (code, axum::Json(status_json(&self.status()))).into_response();
        if self.code == 429 {
            resp.headers_mut()
                .insert("retry-after", http::HeaderValue::from_static("1"));
        }
        resp
    }
}
