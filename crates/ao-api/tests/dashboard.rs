//! The dashboard through the router, without a socket: the security headers on every page,
//! the login and its cookie flags, the session check before any form body is read, CSRF on
//! every form, escaping of prompts, the submit form's 422s, and the prompt search of the API.

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;
use support::{App, Authed, EndlessBody, Options, Reply, TOKEN, empty};

const XSS: &str = r#"<script>alert(1)</script> "><img src=x onerror=alert(2)>"#;

fn no_tokens() -> Options {
    Options {
        tokens: false,
        ..Options::default()
    }
}

/// The value a `Set-Cookie` header of the reply gives cookie `name`, with its attributes.
fn set_cookie<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
}

fn cookie_value(set: &str) -> &str {
    set.split(';').next().unwrap().split_once('=').unwrap().1
}

/// A form post with the given cookies and fields.
fn form(uri: &str, cookies: &str, fields: &[(&str, &str)]) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, cookies)
        .header(header::HOST, "localhost")
        .body(Body::from(serde_urlencoded::to_string(fields).unwrap()))
        .unwrap()
}

fn page(uri: &str, cookies: &str) -> Request<Body> {
    Request::builder()
        .uri(uri)
        .header(header::ACCEPT, "text/html")
        .header(header::COOKIE, cookies)
        .body(Body::empty())
        .unwrap()
}

/// A CSRF token from a page's cookie.
async fn csrf(app: &App, cookies: &str) -> String {
    let r = app.send(page("/new", cookies)).await;
    cookie_value(set_cookie(&r, "ao_csrf").expect("a CSRF cookie")).to_string()
}

fn session() -> String {
    format!("ao_session={}", hex::encode(TOKEN))
}

#[tokio::test]
async fn every_page_has_a_strict_csp_and_no_inline_script_or_style() {
    let app = App::with(no_tokens()).await;
    let id = app.submit(json!({"prompt": "hello"})).await;
    for uri in ["/", "/new", "/usage", &format!("/tasks/{id}"), "/ui/rows"] {
        let r = app.send(page(uri, "")).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text());
        let csp = r.header("content-security-policy").unwrap();
        for part in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ] {
            assert!(csp.contains(part), "{uri}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let html = r.text();
        let inline = html
            .match_indices("<script")
            .any(|(i, _)| !html[i..].split('>').next().unwrap().contains(" src="));
        assert!(!inline, "{uri} has an inline script");
        assert!(
            !html.contains(" style=") && !html.contains("<style"),
            "{uri} has inline style"
        );
        assert!(
            !html.contains(" onclick=") && !html.contains(" onload="),
            "{uri} has an event attribute"
        );
    }
    // The assets the pages name are served, with their types.
    let home = app.send(page("/", "")).await.text();
    for (attr, ty) in [("href=\"", "text/css"), ("src=\"", "text/javascript")] {
        let start = home.find(&format!("{attr}/assets/")).unwrap() + attr.len();
        let path = home[start..].split('"').next().unwrap();
        let r = app.send(empty(Method::GET, path)).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(r.header("content-type").unwrap().starts_with(ty), "{path}");
        assert!(r.header("cache-control").unwrap().contains("immutable"));
    }
}

#[tokio::test]
async fn without_tokens_there_is_no_login() {
    let app = App::with(no_tokens()).await;
    assert_eq!(app.send(page("/", "")).await.status, StatusCode::OK);
    let r = app.send(page("/login", "")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/"));
    assert!(!app.send(page("/", "")).await.text().contains("Log out"));
}

#[tokio::test]
async fn with_tokens_pages_redirect_to_login_and_the_rest_is_refused_unread() {
    let app = App::new().await;
    let r = app.send(page("/", "")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header("location"), Some("/login"));
    let wrong = format!("ao_session={}", hex::encode("wrong"));
    assert_eq!(
        app.send(page("/usage", &wrong)).await.header("location"),
        Some("/login")
    );
    for uri in ["/ui/rows", "/ui/tasks/x/events"] {
        assert_eq!(
            app.send(empty(Method::GET, uri)).await.status,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
    }
    // A form post without a session is refused before its body is read.
    for uri in [
        "/new",
        "/tasks/0190a000-0000-7000-8000-000000000000/cancel",
        "/logout",
    ] {
        let big = EndlessBody::default();
        let req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, &wrong)
            .body(big.body())
            .unwrap();
        assert_eq!(
            app.send(req).await.status,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
        assert!(
            !big.was_polled(),
            "{uri} read the body before the session check"
        );
    }
    // A bearer token is not a session: the dashboard wants its cookie.
    let r = app.send(empty(Method::GET, "/ui/rows").authed()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.send(page("/", &session())).await.status, StatusCode::OK);
}

#[tokio::test]
async fn login_sets_a_strict_http_only_cookie_and_checks_csrf() {
    let app = App::new().await;
    let r = app.send(page("/login", "")).await;
    assert_eq!(r.status, StatusCode::OK);
    let set = set_cookie(&r, "ao_csrf").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let token = cookie_value(set).to_string();
    let cookies = format!("ao_csrf={token}");
    assert!(r.text().contains(&format!("value=\"{token}\"")));

    let r = app
        .send(form(
            "/login",
            &cookies,
            &[("csrf", &token), ("token", "wrong")],
        ))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&r, "ao_session").is_none());
    assert!(r.text().contains("id=\"token-error\""));

    let r = app
        .send(form(
            "/login",
            &cookies,
            &[("csrf", "forged"), ("token", TOKEN)],
        ))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(set_cookie(&r, "ao_session").is_none());

    let r = app
        .send(form(
            "/login",
            &cookies,
            &[("csrf", &token), ("token", TOKEN)],
        ))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let s = set_cookie(&r, "ao_session").unwrap();
    assert!(
        s.contains("HttpOnly") && s.contains("SameSite=Strict") && s.contains("Path=/"),
        "{s}"
    );
    assert!(!s.contains("Secure"), "plain HTTP: {s}");
    assert_eq!(cookie_value(s), hex::encode(TOKEN));

    let mut tls = form("/login", &cookies, &[("csrf", &token), ("token", TOKEN)]);
    tls.headers_mut()
        .insert("x-forwarded-proto", "https".parse().unwrap());
    let r = app.send(tls).await;
    assert!(set_cookie(&r, "ao_session").unwrap().ends_with("Secure"));

    let r = app
        .send(form(
            "/logout",
            &format!("{cookies}; {}", session()),
            &[("csrf", &token)],
        ))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(set_cookie(&r, "ao_session").unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn forms_refuse_a_missing_or_foreign_csrf_token() {
    let app = App::new().await;
    let token = csrf(&app, &session()).await;
    let cookies = format!("{}; ao_csrf={token}", session());
    let fields = |csrf: &'static str| vec![("csrf", csrf), ("prompt", "from the form")];
    for bad in [fields("nope"), vec![("prompt", "no token")]] {
        let r = app.send(form("/new", &cookies, &bad)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    }
    let mut foreign = form("/new", &cookies, &[("csrf", &token), ("prompt", "x")]);
    foreign
        .headers_mut()
        .insert(header::ORIGIN, "http://evil.example".parse().unwrap());
    assert_eq!(app.send(foreign).await.status, StatusCode::FORBIDDEN);
    let listed = app
        .send(empty(Method::GET, "/api/v1/tasks").authed())
        .await
        .json();
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        0,
        "nothing was stored"
    );

    let r = app
        .send(form(
            "/new",
            &cookies,
            &[
                ("csrf", &token),
                ("prompt", "from the form"),
                ("labels", "team=web\nenv = prod"),
            ],
        ))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let location = r.header("location").unwrap().to_string();
    let id = location.strip_prefix("/tasks/").unwrap();
    let task = app
        .send(empty(Method::GET, &format!("/api/v1/tasks/{id}")).authed())
        .await
        .json();
    assert_eq!(task["labels"], json!({"team": "web", "env": "prod"}));

    let cancel = format!("/tasks/{id}/cancel");
    assert_eq!(
        app.send(form(&cancel, &cookies, &[("csrf", "x")]))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let r = app.send(form(&cancel, &cookies, &[("csrf", &token)])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let task = app
        .send(empty(Method::GET, &format!("/api/v1/tasks/{id}")).authed())
        .await
        .json();
    assert_eq!(task["status"], "cancelled");
}

#[tokio::test]
async fn prompts_and_labels_are_escaped_everywhere() {
    let app = App::with(no_tokens()).await;
    let id = app
        .submit(json!({"prompt": XSS, "labels": {"k": "<b>x</b>"}}))
        .await;
    for uri in ["/", &format!("/tasks/{id}"), "/ui/rows"] {
        let html = app.send(page(uri, "")).await.text();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{uri}: {html}"
        );
        assert!(
            !html.contains("<script>alert") && !html.contains("<img") && !html.contains("<b>x"),
            "{uri}"
        );
    }
    let detail = app.send(page(&format!("/tasks/{id}"), "")).await.text();
    assert!(detail.contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"));
}

#[tokio::test]
async fn the_form_shows_a_422_next_to_its_field() {
    let app = App::with(no_tokens()).await;
    let token = csrf(&app, "").await;
    let cookies = format!("ao_csrf={token}");
    let cases = [
        (vec![("timeout_seconds", "999999999")], "timeout_seconds"),
        (vec![("timeout_seconds", "soon")], "timeout_seconds"),
        (vec![("max_budget_usd", "lots")], "max_budget_usd"),
        (vec![("labels", "no equals sign")], "labels"),
        (vec![("repo_url", "ftp://nope")], "repo_url"),
    ];
    for (extra, field) in cases {
        let mut fields = vec![("csrf", token.as_str()), ("prompt", "keep me")];
        fields.extend(extra);
        let r = app.send(form("/new", &cookies, &fields)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        let html = r.text();
        assert!(
            html.contains(&format!("id=\"{field}-error\"")),
            "{field}: {html}"
        );
        assert!(html.contains(">keep me</textarea>"), "the form is refilled");
    }
    let r = app
        .send(form("/new", &cookies, &[("csrf", &token), ("prompt", " ")]))
        .await;
    assert!(r.text().contains("id=\"prompt-error\""));
}

#[tokio::test]
async fn the_task_list_searches_prompts() {
    let app = App::with(no_tokens()).await;
    app.submit(json!({"prompt": "Fix the LOGIN page"})).await;
    app.submit(json!({"prompt": "write docs"})).await;
    let r = app
        .send(empty(Method::GET, "/api/v1/tasks?q=login"))
        .await
        .json();
    assert_eq!(r["items"].as_array().unwrap().len(), 1);
    assert_eq!(r["items"][0]["prompt"], "Fix the LOGIN page");
    let long = "x".repeat(201);
    let r = app
        .send(empty(Method::GET, &format!("/api/v1/tasks?q={long}")))
        .await;
    assert_eq!(
        r.error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed")["field"],
        "q"
    );
    let html = app.send(page("/?q=docs&status=&label=", "")).await.text();
    assert!(html.contains("write docs") && !html.contains("LOGIN"));
    let r = app.send(page("/?label=nokey", "")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().contains("key=value"));
}

#[tokio::test]
async fn an_unknown_task_is_an_html_404() {
    let app = App::with(no_tokens()).await;
    for uri in [
        "/tasks/0190a000-0000-7000-8000-000000000000",
        "/tasks/not-an-id",
    ] {
        let r = app.send(page(uri, "")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(r.header("content-type").unwrap().starts_with("text/html"));
        assert!(r.text().contains("task not found"));
    }
}
