//! Bearer-token authentication for the task API. With no token configured the server only
//! listens on loopback (the binary enforces that), and the API is open to local clients.

use std::sync::Arc;

use ao_core::token::hash;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::{Choice, ConstantTimeEq};

use crate::error::ApiError;

/// The accepted API tokens, kept as SHA-256 hashes so they compare in constant time and never
/// sit in memory in a printable form longer than needed.
#[derive(Clone, Default)]
pub struct ApiTokens {
    hashes: Arc<Vec<String>>,
}

impl std::fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiTokens({} configured)", self.hashes.len())
    }
}

impl ApiTokens {
    pub fn new<S: AsRef<str>>(tokens: impl IntoIterator<Item = S>) -> Self {
        let hashes = tokens
            .into_iter()
            .map(|t| t.as_ref().trim().to_string())
            .filter(|t| !t.is_empty())
            .map(|t| hash(&t))
            .collect();
        ApiTokens {
            hashes: Arc::new(hashes),
        }
    }

    pub fn is_enabled(&self) -> bool {
        !self.hashes.is_empty()
    }

    pub fn accepts(&self, token: &str) -> bool {
        let h = hash(token);
        // Check every entry, without branching, so timing does not reveal which one matched.
        self.hashes
            .iter()
            .fold(Choice::from(0), |ok, known| {
                ok | known.as_bytes().ct_eq(h.as_bytes())
            })
            .into()
    }
}

/// The bearer token of a request, if it has one.
pub fn bearer(req_headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = req_headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

pub async fn require_token(State(tokens): State<ApiTokens>, req: Request, next: Next) -> Response {
    if !tokens.is_enabled() {
        return next.run(req).await;
    }
    match bearer(req.headers()) {
        Some(t) if tokens.accepts(t) => next.run(req).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_tokens() {
        let t = ApiTokens::new(["alpha", " beta\n", ""]);
        assert!(t.is_enabled());
        assert!(t.accepts("alpha") && t.accepts("beta"));
        assert!(!t.accepts("gamma") && !t.accepts(""));
        assert!(!ApiTokens::default().is_enabled());
        assert!(!format!("{t:?}").contains("alpha"));
    }
}
