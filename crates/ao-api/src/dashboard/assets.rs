//! The dashboard's stylesheet and script, compiled into the binary (no build step, no CDN).
//! Both are hand-written; no package is vendored. Their paths carry a hash of their content,
//! so a browser may cache them for a long time and still gets a new version at once.

use std::sync::LazyLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

fn versioned(name: &str, ext: &str, body: &str) -> String {
    let hash = hex::encode(&Sha256::digest(body.as_bytes())[..6]);
    format!("/assets/{name}.{hash}.{ext}")
}

/// Where the stylesheet is served.
pub static CSS_PATH: LazyLock<String> = LazyLock::new(|| versioned("app", "css", CSS));
/// Where the script is served.
pub static JS_PATH: LazyLock<String> = LazyLock::new(|| versioned("app", "js", JS));

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    resp
}

/// `GET /assets/app.<hash>.css`.
pub async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

/// `GET /assets/app.<hash>.js`.
pub async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}
