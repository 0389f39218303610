//! The login page (only when the server has API tokens) and logout.

use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::forms;
use super::session::{self, CsrfToken};
use super::view::{self, Nav, Shell};
use crate::AppState;

fn login_page(csrf: &str, error: Option<&str>) -> Markup {
    let shell = Shell {
        title: "Log in",
        nav: Nav::None,
        logout_csrf: None,
    };
    view::page(
        shell,
        html! {
            h1 { "Log in" }
            p { "This server asks for one of its API tokens (" code { "--api-tokens" } ")." }
            form method="post" action="/login" class="stack narrow" {
                input type="hidden" name="csrf" value=(csrf);
                label for="token" { "API token" }
                input id="token" name="token" type="password" required autocomplete="current-password"
                    aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| "token-error")];
                @if let Some(e) = error {
                    p id="token-error" class="field-error" role="alert" { (e) }
                }
                button type="submit" { "Log in" }
            }
        },
    )
}

/// `GET /login`: the form, or the tasks page when no token is needed.
pub async fn show(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
) -> Response {
    if !state.tokens.is_enabled() {
        return Redirect::to("/").into_response();
    }
    view::respond(StatusCode::OK, login_page(&csrf.0, None))
}

/// `POST /login`: keep an accepted token in the session cookie.
pub async fn submit(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let fields = match forms::read(&headers, body, 16 * 1024).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let token = fields.get("token").map(str::trim).unwrap_or("");
    if !state.tokens.is_enabled() {
        return Redirect::to("/").into_response();
    }
    if token.is_empty() || !state.tokens.accepts(token) {
        tracing::info!("dashboard login refused");
        let page = login_page(&csrf.0, Some("That token is not accepted by this server."));
        return view::respond(StatusCode::UNAUTHORIZED, page);
    }
    let mut resp = Redirect::to("/").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        session::session_cookie(token, session::over_tls(&headers)),
    );
    resp
}

/// `POST /logout`: forget the session.
pub async fn logout(headers: HeaderMap, body: Body) -> Response {
    if let Err(resp) = forms::read(&headers, body, 16 * 1024).await {
        return resp;
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(
            session::SESSION_COOKIE,
            "",
            Some(0),
            session::over_tls(&headers),
        ),
    );
    resp
}
