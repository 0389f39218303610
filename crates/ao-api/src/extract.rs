//! A JSON body extractor whose errors speak the API's error shape: malformed JSON is a 400,
//! a well-formed body with a wrong, missing or unknown field is a 422 naming the field, and a
//! body over the limit is a 413.

use ao_core::validation::ValidationError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
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
        let json_type = req
            .headers()
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
            Some("application/json") => {}
            Some(m) if m.ends_with("+json") => {}
            _ => {
                return Err(ApiError::UnsupportedMediaType(
                    "expected Content-Type: application/json".into(),
                ));
            }
        }
        let limit = req
            .extensions()
            .get::<BodyLimit>()
            .map_or(usize::MAX, |l| l.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit }
            } else {
                ApiError::BadRequest(format!("could not read the request body: {e}"))
            }
        })?;
        parse(&bytes).map(JsonBody)
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
