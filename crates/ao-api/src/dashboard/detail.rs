//! The task page: prompt, repository, branch and pull request, the status timeline with
//! reasons, the result, a cancel control (a second, explicit confirmation button) while the
//! task is not finished, the raw JSON, and two live panes that the page's script fills from
//! the task's streams: the agent's transcript (events, SSE) and the worker's logs.
//!
//! The part that changes as the task moves (`#task-live`) is also served alone
//! (`/ui/tasks/{id}/status`), for the script to swap in when [`super::live`] says the task
//! changed.

use ao_core::task::{Task, TransitionRecord};
use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::{Markup, html};

use super::forms;
use super::session::CsrfToken;
use super::view::{self, Nav, PageError, Shell};
use crate::AppState;
use crate::error::ApiError;
use crate::tasks::{self, task_id};

/// A link target only for http(s) URLs; anything else is shown as text.
fn safe_url(url: &str) -> Option<&str> {
    (url.starts_with("https://") || url.starts_with("http://")).then_some(url)
}

fn timeline(history: &[TransitionRecord]) -> Markup {
    html! {
        ol class="timeline" {
            @for h in history {
                li {
                    (view::badge(h.to))
                    " " span class="reason" { (h.reason.as_string()) }
                    " " time datetime=(h.at.to_rfc3339()) { (h.at.format("%Y-%m-%d %H:%M:%S UTC")) }
                }
            }
        }
    }
}

fn result_view(t: &Task) -> Markup {
    let Some(r) = &t.result else {
        return html! { p class="muted" { "No result yet." } };
    };
    html! {
        dl class="facts" {
            dt { "Outcome" } dd data-field="outcome" { (r.outcome.as_str()) }
            @if let Some(c) = r.cost_usd { dt { "Cost" } dd data-field="cost" { (view::cost(c)) } }
            @if r.input_tokens.is_some() || r.output_tokens.is_some() {
                dt { "Tokens" }
                dd { (r.input_tokens.unwrap_or(0)) " in / " (r.output_tokens.unwrap_or(0)) " out" }
            }
            @if let Some(n) = r.num_turns { dt { "Turns" } dd { (n) } }
            @if let Some(s) = &r.session_id { dt { "Session" } dd { code { (s) } } }
            @if let Some(e) = &r.error { dt { "Error" } dd class="error-text" { (e) } }
        }
        @if let Some(s) = &r.summary {
            h3 { "Summary" }
            pre class="summary" { (s) }
        }
    }
}

fn cancel_control(t: &Task, csrf: &str) -> Markup {
    if t.status.is_terminal() {
        return html! {};
    }
    html! {
        details class="cancel" {
            summary { "Cancel this task…" }
            form method="post" action={ "/tasks/" (t.id) "/cancel" } {
                input type="hidden" name="csrf" value=(csrf);
                p { "The worker is stopped and the task ends as cancelled. This cannot be undone." }
                button type="submit" class="danger" { "Yes, cancel the task" }
            }
        }
    }
}

/// The changing part of the page.
fn live(t: &Task, history: &[TransitionRecord], csrf: &str) -> Markup {
    html! {
        div id="task-live" data-terminal=(t.status.is_terminal()) {
            p class="status-line" {
                (view::badge(t.status)) " " span class="reason" { (t.reason.as_string()) }
                @if let Some(m) = &t.message { " — " span { (m) } }
                @if t.cancel_requested && !t.status.is_terminal() { " (stopping)" }
            }
            (cancel_control(t, csrf))
            h2 { "Result" }
            (result_view(t))
            h2 { "Timeline" }
            (timeline(history))
        }
    }
}

fn facts(t: &Task) -> Markup {
    let repo = t.spec.repository.as_ref();
    let result = t.result.as_ref();
    html! {
        dl class="facts" {
            dt { "Repository" } dd { @if let Some(r) = repo { (r.url) } @else { "none" } }
            @if let Some(g) = repo.and_then(|r| r.git_ref.as_ref()) { dt { "Ref" } dd { (g) } }
            @if let Some(b) = result.and_then(|r| r.branch.as_ref()) { dt { "Branch" } dd { code { (b) } } }
            @if let Some(pr) = result.and_then(|r| r.pr_url.as_ref()) {
                dt { "Pull request" }
                dd { @if let Some(u) = safe_url(pr) { a href=(u) rel="noreferrer" { (pr) } } @else { (pr) } }
            }
            @if let Some(m) = &t.spec.model { dt { "Model" } dd { (m) } }
            dt { "Timeout" } dd { (view::short_span(i64::try_from(t.spec.timeout_seconds).unwrap_or(i64::MAX))) }
            @if let Some(b) = t.spec.max_budget_usd { dt { "Budget" } dd { (view::cost(b)) } }
            @if !t.spec.labels.is_empty() {
                dt { "Labels" }
                dd { @for (k, v) in &t.spec.labels { span class="chip" { (k) "=" (v) } " " } }
            }
            dt { "Created" } dd { (view::age(t.created_at, Utc::now())) }
            @if let Some(w) = &t.worker { dt { "Worker" } dd { (w.runtime) "/" (w.name) } }
        }
    }
}

/// The task and its history, consistent with each other: the task is read again when a move
/// landed between the two reads, so the status line and the timeline's last entry agree.
async fn load(state: &AppState, raw: &str) -> Result<(Task, Vec<TransitionRecord>), ApiError> {
    let id = task_id(raw)?;
    let read = || async {
        state
            .store
            .get(id)
            .await?
            .ok_or_else(ApiError::not_found_task)
    };
    let mut task = read().await?;
    let history = state.store.history(id).await?;
    if history.last().is_some_and(|h| h.to != task.status) {
        task = read().await?;
    }
    Ok((task, history))
}

/// `GET /tasks/{id}`.
pub async fn page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let (t, history) = load(&state, &raw).await?;
    let id = t.id;
    let body = html! {
        p class="crumbs" { a href="/" { "← Tasks" } }
        h1 { "Task " code { (id) } }
        section aria-labelledby="prompt-h" {
            h2 id="prompt-h" { "Prompt" }
            pre class="prompt-full" { (t.spec.prompt) }
        }
        (facts(&t))
        p { a href={ "/ui/tasks/" (id) "/json" } { "Raw JSON" } }
        section data-live={ "/ui/tasks/" (id) "/status" } data-changes={ "/ui/changes?task=" (id) } {
            (live(&t, &history, &csrf.0))
        }
        section class="output" aria-label="Output" {
            div role="tablist" aria-label="Output" class="tabs" {
                button type="button" role="tab" id="tab-transcript" aria-controls="pane-transcript" aria-selected="true" { "Transcript" }
                button type="button" role="tab" id="tab-logs" aria-controls="pane-logs" aria-selected="false" tabindex="-1" { "Logs" }
            }
            div id="pane-transcript" role="tabpanel" aria-labelledby="tab-transcript" tabindex="0" {
                ol id="transcript" class="transcript" aria-live="polite" data-events={ "/ui/tasks/" (id) "/events" } {}
                noscript { p { "The transcript needs JavaScript; the " a href={ "/ui/tasks/" (id) "/events?follow=false" } { "raw events" } " do not." } }
            }
            div id="pane-logs" role="tabpanel" aria-labelledby="tab-logs" tabindex="0" {
                pre id="logs" class="logs" data-logs={ "/ui/tasks/" (id) "/logs" } {}
            }
        }
    };
    let shell = Shell {
        title: "Task",
        nav: Nav::None,
        logout_csrf: state.tokens.is_enabled().then_some(csrf.0.as_str()),
    };
    Ok(view::respond(StatusCode::OK, view::page(shell, body)))
}

/// `GET /ui/tasks/{id}/status`: the changing part of the task page.
pub async fn status(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let (t, history) = load(&state, &raw).await?;
    Ok(view::respond(StatusCode::OK, live(&t, &history, &csrf.0)))
}

/// `POST /tasks/{id}/cancel`: cancel, then back to the task page.
pub async fn cancel(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(resp) = forms::read(&headers, body, 16 * 1024).await {
        return resp;
    }
    let id = match task_id(&raw) {
        Ok(id) => id,
        Err(e) => return PageError(e).into_response(),
    };
    match tasks::cancel(State(state), Path(raw)).await {
        Ok(_) | Err(ApiError::Conflict(_)) => Redirect::to(&format!("/tasks/{id}")).into_response(),
        Err(e) => PageError(e).into_response(),
    }
}
