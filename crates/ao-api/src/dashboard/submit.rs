//! The submit form. A post goes through the same path as `POST /api/v1/tasks` (the request
//! is built as the API's JSON body, then validated, admitted and stored by
//! [`crate::tasks::submit`]); a 422 from it is shown next to the field it names, with the
//! form refilled.

use ao_core::validation::{TaskRequest, ValidationError};
use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::{Map, Value, json};

use super::forms::{self, Fields};
use super::session::CsrfToken;
use super::view::{self, Nav, PageError, Shell};
use crate::AppState;
use crate::error::ApiError;
use crate::extract;

/// The form's inputs: name, label, hint, and the API fields whose errors show under it.
const INPUTS: [(&str, &str, &str, &[&str]); 6] = [
    (
        "repo_url",
        "Repository URL",
        "optional; https or ssh clone URL",
        &["repository.url", "repository"],
    ),
    (
        "repo_ref",
        "Ref",
        "branch, tag or commit to start from",
        &["repository.ref"],
    ),
    (
        "model",
        "Model",
        "optional, e.g. claude-sonnet-4-5",
        &["model"],
    ),
    (
        "timeout_seconds",
        "Timeout (seconds)",
        "optional; the server's default otherwise",
        &["timeout_seconds"],
    ),
    (
        "max_budget_usd",
        "Budget (USD)",
        "optional spending cap for the agent",
        &["max_budget_usd"],
    ),
    ("labels", "Labels", "one key=value per line", &["labels"]),
];

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::Validation(ValidationError {
        field: field.into(),
        message: message.into(),
    })
}

/// Build the API request from the form; numbers that do not parse are a 422 on their field.
fn request(f: &Fields) -> Result<TaskRequest, ApiError> {
    let mut body = Map::new();
    body.insert("prompt".into(), json!(f.get("prompt").unwrap_or("")));
    if let Some(url) = f.text("repo_url") {
        let mut repo = json!({"url": url});
        if let Some(r) = f.text("repo_ref") {
            repo["ref"] = json!(r);
        }
        body.insert("repository".into(), repo);
    } else if f.text("repo_ref").is_some() {
        return Err(invalid("repository.ref", "needs a repository URL"));
    }
    if let Some(m) = f.text("model") {
        body.insert("model".into(), json!(m));
    }
    if let Some(t) = f.text("timeout_seconds") {
        let n: u64 = t
            .parse()
            .map_err(|_| invalid("timeout_seconds", "must be a whole number of seconds"))?;
        body.insert("timeout_seconds".into(), json!(n));
    }
    if let Some(b) = f.text("max_budget_usd") {
        let n: f64 = b
            .parse()
            .map_err(|_| invalid("max_budget_usd", "must be a number of dollars"))?;
        body.insert("max_budget_usd".into(), json!(n));
    }
    if let Some(text) = f.get("labels") {
        let mut labels = Map::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| invalid("labels", "each line must be key=value"))?;
            labels.insert(k.trim().into(), Value::String(v.trim().into()));
        }
        if !labels.is_empty() {
            body.insert("labels".into(), Value::Object(labels));
        }
    }
    let bytes =
        serde_json::to_vec(&Value::Object(body)).map_err(|e| ApiError::Internal(Box::new(e)))?;
    extract::parse(&bytes)
}

/// Which input an API field's error belongs under.
fn input_of(field: &str) -> &'static str {
    if field == "prompt" || field == "task" {
        return "prompt";
    }
    INPUTS
        .iter()
        .find(|(_, _, _, fields)| {
            fields
                .iter()
                .any(|f| field == *f || field.starts_with(&format!("{f}.")))
        })
        .map_or("", |(name, ..)| name)
}

fn error_for<'a>(error: Option<&'a ValidationError>, input: &str) -> Option<&'a str> {
    error
        .filter(|e| input_of(&e.field) == input)
        .map(|e| e.message.as_str())
}

fn form(
    csrf: &str,
    values: &Fields,
    error: Option<&ValidationError>,
    general: Option<&str>,
) -> Markup {
    let prompt_err = error_for(error, "prompt");
    html! {
        h1 { "Submit a task" }
        @if let Some(g) = general { (view::notice("error", g)) }
        @if let Some(e) = error.filter(|e| input_of(&e.field).is_empty()) {
            (view::notice("error", &format!("{}: {}", e.field, e.message)))
        }
        form method="post" action="/new" class="stack" novalidate {
            input type="hidden" name="csrf" value=(csrf);
            label for="prompt" { "Prompt" }
            textarea id="prompt" name="prompt" rows="6" required
                aria-invalid=[prompt_err.map(|_| "true")] aria-describedby=[prompt_err.map(|_| "prompt-error")] {
                (values.get("prompt").unwrap_or(""))
            }
            @if let Some(m) = prompt_err { p id="prompt-error" class="field-error" role="alert" { (m) } }
            @for (name, label, hint, _) in INPUTS {
                @let err = error_for(error, name);
                @let hint_id = format!("{name}-hint");
                @let err_id = format!("{name}-error");
                label for=(name) { (label) }
                @if name == "labels" {
                    textarea id=(name) name=(name) rows="3" aria-describedby=(hint_id)
                        aria-invalid=[err.map(|_| "true")] { (values.get(name).unwrap_or("")) }
                } @else {
                    input id=(name) name=(name) value=(values.get(name).unwrap_or(""))
                        inputmode=[matches!(name, "timeout_seconds" | "max_budget_usd").then_some("decimal")]
                        aria-describedby={ (hint_id) @if err.is_some() { " " (err_id) } }
                        aria-invalid=[err.map(|_| "true")];
                }
                small id=(hint_id) class="hint" { (hint) }
                @if let Some(m) = err { p id=(err_id) class="field-error" role="alert" { (m) } }
            }
            button type="submit" { "Submit" }
        }
    }
}

fn shell<'a>(state: &AppState, csrf: &'a str) -> Shell<'a> {
    Shell {
        title: "Submit",
        nav: Nav::Submit,
        logout_csrf: state.tokens.is_enabled().then_some(csrf),
    }
}

/// `GET /new`.
pub async fn show(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
) -> Response {
    let body = form(&csrf.0, &Fields::default(), None, None);
    view::respond(StatusCode::OK, view::page(shell(&state, &csrf.0), body))
}

/// `POST /new`: submit, then show the new task; or the form again with the error.
pub async fn submit(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let fields = match forms::read(&headers, body, state.body_limit).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let result = match request(&fields) {
        Ok(req) => crate::tasks::submit(&state, &HeaderMap::new(), req).await,
        Err(e) => Err(e),
    };
    let (status, markup) = match result {
        Ok(s) => return Redirect::to(&format!("/tasks/{}", s.task.id)).into_response(),
        Err(ApiError::Validation(v)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            form(&csrf.0, &fields, Some(&v), None),
        ),
        Err(e @ ApiError::Internal(_)) => return PageError(e).into_response(),
        Err(e) => {
            let status = e.status();
            (status, form(&csrf.0, &fields, None, Some(&e.to_string())))
        }
    };
    view::respond(status, view::page(shell(&state, &csrf.0), markup))
}
