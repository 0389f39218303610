//! The web dashboard, served at `/` by the same router as the API: every task live, what the
//! agent did, submit and cancel, and usage at a glance.
//!
//! The pages are rendered on the server with maud (compile-time templates that escape every
//! interpolated value, so prompts and agent output are always text), styled by one embedded
//! stylesheet, and brought to life by one short, hand-written script module ([`assets`]): told
//! by [`live`] (SSE) that something changed, it swaps in the tasks page's rows or the task's
//! status; it follows a task's events (SSE) and logs through the same handlers as the API.
//! No package is vendored and nothing is built at compile time besides the Rust crate.
//!
//! - [`list`], [`detail`], [`submit`], [`usage`] (with [`charts`]): the pages, and [`live`]
//!   the stream that says when to refresh them,
//! - [`session`], [`login`], [`forms`]: the login (when the server has API tokens), the session
//!   cookie, CSRF protection, and form reading after the session check,
//! - [`view`]: the page shell and the pieces every page shows.
//!
//! Every response carries a strict Content-Security-Policy (no inline script or style, no
//! framing) and the headers that go with it ([`security_headers`]).

pub mod assets;
pub mod charts;
pub mod detail;
pub mod forms;
pub mod list;
pub mod live;
pub mod login;
pub mod session;
pub mod submit;
pub mod usage;
pub mod view;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use crate::{AppState, output, tasks};

/// The Content-Security-Policy of every dashboard response: scripts, styles and connections
/// only from this origin, no inline script or style, forms only to this origin, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Add the CSP and its companions to a response.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// The dashboard's routes: pages and their fragments and streams behind the session check,
/// the login page and the assets without it; all with a CSRF token and the security headers.
pub fn router(state: &AppState) -> Router<AppState> {
    let private = Router::new()
        .route("/", get(list::page))
        .route("/ui/rows", get(list::fragment))
        .route("/ui/changes", get(live::changes))
        .route("/tasks/{id}", get(detail::page))
        .route("/tasks/{id}/cancel", post(detail::cancel))
        .route("/ui/tasks/{id}/status", get(detail::status))
        .route("/ui/tasks/{id}/json", get(tasks::get))
        .route("/ui/tasks/{id}/events", get(output::events))
        .route("/ui/tasks/{id}/logs", get(output::logs))
        .route("/new", get(submit::show).post(submit::submit))
        .route("/usage", get(usage::page))
        .route("/logout", post(login::logout))
        .route_layer(middleware::from_fn_with_state(
            state.tokens.clone(),
            session::require_session,
        ));
    let public = Router::new()
        .route("/login", get(login::show).post(login::submit))
        .route(assets::CSS_PATH.as_str(), get(assets::css))
        .route(assets::JS_PATH.as_str(), get(assets::js));
    private
        .merge(public)
        .route_layer(middleware::from_fn(session::csrf_cookie))
        .route_layer(middleware::from_fn(security_headers))
}
