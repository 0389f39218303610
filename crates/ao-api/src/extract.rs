//! A JSON body extractor whose errors speak the API's error shape: malformed JSON is a 400,
//! a well-formed body with a wrong, missing or unknown field is a 422 naming the field, and a
//! body over the limit is a 413.
//!
//! [`JsonBody`] is the extractor for the task API; [`read_json`] does the same for handlers
//! that must check something (a worker's token) before the body is read at all.

use ao_core::validation::ValidationError;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use futures::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        require_json(req.headers())?;
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(usize::MAX, |l| l.0);
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_error(e.status(), &e, limit))?;
        parse(&bytes).map(JsonBody)
    }
}

/// Refuse a request whose `Content-Type` is not JSON (`application/json` or `*/*+json`).
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match json_type.as_deref() {
        Some("application/json") => Ok(()),
        Some(m) if m.ends_with("+json") => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType(
            "expected Content-Type: application/json".into(),
        )),
    }
}

/// Read a JSON body of at most `limit` bytes and parse it: 415 if it is not JSON, 413 past the
/// limit (reading stops there), 400/422 as [`parse`] says.
pub async fn read_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    require_json(headers)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut chunks = body.into_data_stream();
    let mut buf = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| body_error(StatusCode::BAD_REQUEST, &e, limit))?;
        if buf.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    parse(&buf)
}

fn body_error(status: StatusCode, e: &dyn std::fmt::Display, limit: usize) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge { limit }
    } else {
        ApiError::BadRequest(format!("could not read the request body: {e}"))
    }
}

/// The configured body limit, made visible to the extractor for its error message.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize(de) {
        Ok(v) => Ok(v),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            use serde_json::error::Category;
            match inner.classify() {
                Category::Syntax | Category::Eof | Category::Io => {
                    Err(ApiError::BadRequest(format!("malformed JSON: {inner}")))
                }
                Category::Data => {
                    let msg = inner.to_string();
                    // The path names the offending field, unknown ones included; a missing
                    // field is only named in the message.
                    let missing = msg
                        .strip_prefix("missing field `")
                        .and_then(|r| r.split('`').next())
                        .map(str::to_string);
                    let field = match (path.as_str(), missing) {
                        (".", Some(m)) => m,
                        // Not an object at all.
                        (p, None) if p == "." || p.starts_with('[') => "body".to_string(),
                        (p, Some(m)) => format!("{p}.{m}"),
                        (_, None) => path,
                    };
                    Err(ApiError::Validation(ValidationError {
                        field,
                        message: strip_position(&msg),
                    }))
                }
            }
        }
    }
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ao_core::validation::TaskRequest;

    fn field(json: &str) -> String {
        match parse::<TaskRequest>(json.as_bytes()) {
            Err(ApiError::Validation(v)) => v.field,
            other => panic!(
                "expected validation error, got {other:?}",
                other = other.err()
            ),
        }
    }

    #[test]
    fn classifies_errors() {
        assert!(matches!(
            parse::<TaskRequest>(b"{nope"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(
            parse::<TaskRequest>(b""),
            Err(ApiError::BadRequest(_))
        ));
        assert_eq!(field(r#"{"prompt":"x","bogus":1}"#), "bogus");
        assert_eq!(field(r#"{"prompt":"x","max_turns":"ten"}"#), "max_turns");
        assert_eq!(
            field(r#"{"prompt":"x","repository":{"url":"u","extra":1}}"#),
            "repository.extra"
        );
        assert_eq!(field(r#"{"prompt":"x","labels":{"a":1}}"#), "labels.a");
        assert_eq!(field(r#"[1]"#), "body");
    }
}
