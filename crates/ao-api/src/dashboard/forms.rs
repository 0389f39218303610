//! Reading the dashboard's form posts: the body (`application/x-www-form-urlencoded`) is read
//! only after the session check has passed, within the server's body limit, and the form's
//! CSRF field is checked before any field is acted upon.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::session;

/// A posted form's fields, in order (a name may repeat).
#[derive(Debug, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed, or `None` when empty.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }
}

/// Read a form of at most `limit` bytes and check its CSRF token; the error is the response
/// to send (413, 400 or the refusal page).
pub async fn read(headers: &HeaderMap, body: Body, limit: usize) -> Result<Fields, Response> {
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the form is larger than the limit of {limit} bytes\n"),
        )
            .into_response()
    })?;
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("malformed form: {e}\n")).into_response())?;
    let fields = Fields(fields);
    session::check(headers, fields.get("csrf")).map_err(|e| session::refused(&e))?;
    Ok(fields)
}
