//! Who may use the dashboard, and proof that a form was sent by it.
//!
//! - **Session.** With API tokens configured, the dashboard asks for one on `/login` and keeps
//!   it in the `ao_session` cookie (hex-encoded, `HttpOnly`, `SameSite=Strict`, `Secure` when
//!   the request came over TLS, i.e. through a proxy saying `X-Forwarded-Proto: https`).
//!   [`require_session`] checks it before any handler runs, so a form's body is never read for
//!   a client without a valid token, as with the bearer check of the API. Without tokens the
//!   server only listens on loopback and there is no login.
//! - **CSRF.** Every dashboard response carries an `ao_csrf` cookie (random, `HttpOnly`,
//!   `SameSite=Strict`) and every form a hidden `csrf` field with the same value; a POST whose
//!   field does not match its cookie is refused (double submit: a foreign page can make the
//!   browser send the cookie, but cannot read it to fill the field). A POST with an `Origin`
//!   header naming another host is refused as well.

use ao_core::token;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::view::{self, Nav, Shell};
use crate::ApiTokens;

/// The cookie holding the API token of a logged-in browser.
pub const SESSION_COOKIE: &str = "ao_session";
/// The cookie holding the CSRF token the forms repeat.
pub const CSRF_COOKIE: &str = "ao_csrf";
/// A session lasts twelve hours, then the dashboard asks for the token again.
const SESSION_MAX_AGE: u64 = 12 * 3600;

/// The CSRF token of this request, put in the request's extensions by [`csrf_cookie`] for the
/// handlers to render into their forms.
#[derive(Clone, Debug)]
pub struct CsrfToken(pub String);

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the browser reached us over TLS (the server itself speaks plain HTTP; a TLS
/// proxy in front says so in `X-Forwarded-Proto`).
pub fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value with the flags every dashboard cookie has.
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>, tls: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if tls {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).expect("cookie values are hex")
}

/// The session cookie for `token` (hex, so any token fits a cookie value).
pub fn session_cookie(token: &str, tls: bool) -> HeaderValue {
    set_cookie(
        SESSION_COOKIE,
        &hex::encode(token),
        Some(SESSION_MAX_AGE),
        tls,
    )
}

/// Whether the request's session cookie holds an accepted token.
pub fn has_session(tokens: &ApiTokens, headers: &HeaderMap) -> bool {
    if !tokens.is_enabled() {
        return true;
    }
    cookie(headers, SESSION_COOKIE)
        .and_then(|v| hex::decode(v).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .is_some_and(|t| tokens.accepts(&t))
}

/// Refuse a request without a valid session before anything reads its body: pages redirect
/// to the login page, everything else (fragments, streams, form posts) gets 401.
pub async fn require_session(
    State(tokens): State<ApiTokens>,
    req: Request,
    next: Next,
) -> Response {
    if has_session(&tokens, req.headers()) {
        return next.run(req).await;
    }
    let wants_page = req.method() == Method::GET
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
    if wants_page {
        return Redirect::to("/login").into_response();
    }
    (StatusCode::UNAUTHORIZED, "log in at /login\n").into_response()
}

/// Give every request a CSRF token (the cookie's, or a new one set on the response).
pub async fn csrf_cookie(mut req: Request, next: Next) -> Response {
    let existing = cookie(req.headers(), CSRF_COOKIE)
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string);
    let tls = over_tls(req.headers());
    let (value, fresh) = match existing {
        Some(v) => (v, false),
        None => (token::generate(), true),
    };
    req.extensions_mut().insert(CsrfToken(value.clone()));
    let mut resp = next.run(req).await;
    if fresh {
        resp.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(CSRF_COOKIE, &value, None, tls),
        );
    }
    resp
}

/// Why a form post was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CsrfError {
    #[error("the form's CSRF token is missing or does not match its cookie; reload the page")]
    Mismatch,
    #[error("the request comes from another site")]
    ForeignOrigin,
}

/// Check a posted form's `csrf` field against the request's cookie, and its `Origin`.
pub fn check(headers: &HeaderMap, field: Option<&str>) -> Result<(), CsrfError> {
    if let (Some(origin), Some(host)) = (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        let origin_host = origin.split_once("://").map_or(origin, |(_, h)| h);
        if origin_host != host {
            return Err(CsrfError::ForeignOrigin);
        }
    }
    let cookie = cookie(headers, CSRF_COOKIE).unwrap_or("");
    match field {
        Some(f)
            if !cookie.is_empty() && token::constant_time_eq(f.as_bytes(), cookie.as_bytes()) =>
        {
            Ok(())
        }
        _ => Err(CsrfError::Mismatch),
    }
}

/// The page a refused form post gets.
pub fn refused(e: &CsrfError) -> Response {
    let shell = Shell {
        title: "Refused",
        nav: Nav::None,
        logout_csrf: None,
    };
    let body = html! {
        h1 { "Request refused" }
        (view::notice("error", &e.to_string()))
        p { a href="/" { "Back to the tasks" } }
    };
    view::respond(StatusCode::FORBIDDEN, view::page(shell, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn reads_cookies_and_checks_csrf() {
        let t = "a".repeat(64);
        let h = headers(&[
            ("cookie", "x=1; ao_csrf=".to_owned().as_str()),
            ("cookie", &format!("ao_csrf={t}")),
        ]);
        assert_eq!(cookie(&h, "x"), Some("1"));
        let h = headers(&[("cookie", &format!("x=1; ao_csrf={t}")), ("host", "h:1")]);
        assert_eq!(check(&h, Some(&t)), Ok(()));
        assert_eq!(check(&h, Some("b")), Err(CsrfError::Mismatch));
        assert_eq!(check(&h, None), Err(CsrfError::Mismatch));
        let mut foreign = h.clone();
        foreign.insert("origin", HeaderValue::from_static("http://evil:1"));
        assert_eq!(check(&foreign, Some(&t)), Err(CsrfError::ForeignOrigin));
        foreign.insert("origin", HeaderValue::from_static("http://h:1"));
        assert_eq!(check(&foreign, Some(&t)), Ok(()));
        assert_eq!(check(&headers(&[]), Some("")), Err(CsrfError::Mismatch));
    }

    #[test]
    fn sessions_hold_an_accepted_token() {
        let tokens = ApiTokens::new(["s3cret"]);
        let ok = headers(&[("cookie", &format!("ao_session={}", hex::encode("s3cret")))]);
        assert!(has_session(&tokens, &ok));
        let bad = headers(&[("cookie", &format!("ao_session={}", hex::encode("nope")))]);
        assert!(!has_session(&tokens, &bad));
        assert!(!has_session(&tokens, &headers(&[])));
        assert!(has_session(&ApiTokens::default(), &headers(&[])));
        let c = session_cookie("s3cret", true);
        let c = c.to_str().unwrap();
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.ends_with("Secure"));
        assert!(
            !session_cookie("s", false)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }
}
