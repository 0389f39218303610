//! The tasks page: counts by status and today's cost, filters (status, label, prompt text),
//! a page of tasks from the store's cursor, and the fragment (`/ui/rows`) that the page's
//! script fetches to update the counts and rows in place when [`super::live`] says the list
//! changed.

use ao_core::lifecycle::TaskStatus;
use ao_core::store::ListQuery;
use ao_core::task::Task;
use ao_core::usage;
use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{Markup, html};

use super::session::CsrfToken;
use super::view::{self, Nav, PageError, Shell};
use crate::AppState;
use crate::error::ApiError;
use crate::tasks::list_query;

/// Rows per page.
const PAGE: usize = 50;

/// The page's filters as given, kept to refill the form and build links.
#[derive(Default)]
struct Filters {
    status: String,
    label: String,
    q: String,
    cursor: Option<String>,
}

impl Filters {
    fn parse(raw: &str) -> Filters {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).unwrap_or_default();
        let mut f = Filters::default();
        for (k, v) in pairs {
            match k.as_str() {
                "status" => f.status = v,
                "label" => f.label = v,
                "q" => f.q = v,
                "cursor" => f.cursor = Some(v).filter(|c| !c.is_empty()),
                _ => {}
            }
        }
        f
    }

    /// The query string of these filters (empty ones left out), with `cursor` if given.
    fn query(&self, cursor: Option<&str>) -> String {
        let mut pairs: Vec<(&str, &str)> = [
            ("status", self.status.as_str()),
            ("label", self.label.as_str()),
            ("q", self.q.as_str()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .collect();
        if let Some(c) = cursor {
            pairs.push(("cursor", c));
        }
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }

    fn store_query(&self) -> Result<ListQuery, ApiError> {
        let mut q = list_query(&self.query(self.cursor.as_deref()))?;
        q.limit = PAGE;
        Ok(q)
    }
}

/// Counts for the header: queued, active, finished today, today's cost.
pub struct Counts {
    pub queued: u64,
    pub active: u64,
    pub finished_today: u64,
    pub cost_today: f64,
}

pub async fn counts(state: &AppState, now: DateTime<Utc>) -> Result<Counts, ApiError> {
    let by_status = state.store.count_by_status().await?;
    let of = |want: &[TaskStatus]| {
        by_status
            .iter()
            .filter(|(s, _)| want.contains(s))
            .map(|(_, n)| n)
            .sum()
    };
    let since = usage::window_start(now, 1);
    let today = usage::daily(&state.store.finished_since(since).await?, since, now);
    let (finished_today, cost_today) = today
        .first()
        .map_or((0, 0.0), |d| (d.finished(), d.cost_usd));
    Ok(Counts {
        queued: of(&[TaskStatus::Queued]),
        active: of(&[TaskStatus::Starting, TaskStatus::Running]),
        finished_today,
        cost_today,
    })
}

fn counts_view(c: &Counts) -> Markup {
    html! {
        dl id="counts" class="counts" {
            div { dt { "Queued" } dd data-count="queued" { (c.queued) } }
            div { dt { "Running" } dd data-count="running" { (c.active) } }
            div { dt { "Finished today" } dd data-count="finished" { (c.finished_today) } }
            div { dt { "Cost today" } dd data-count="cost" { (view::cost(c.cost_today)) } }
        }
    }
}

fn row(t: &Task, now: DateTime<Utc>) -> Markup {
    let repo = t.spec.repository.as_ref();
    html! {
        tr data-id=(t.id) data-status=(t.status.as_str()) {
            td data-label="Status" { (view::badge(t.status)) }
            td data-label="Prompt" class="prompt" {
                a href={ "/tasks/" (t.id) } { (view::first_line(&t.spec.prompt, 120)) }
            }
            td data-label="Repository" class="repo" {
                @if let Some(r) = repo { (r.url) @if let Some(g) = &r.git_ref { " @ " (g) } }
            }
            td data-label="Labels" {
                @for (k, v) in &t.spec.labels { span class="chip" { (k) "=" (v) } " " }
            }
            td data-label="Age" { (view::age(t.created_at, now)) }
            td data-label="Duration" { (view::duration(t, now)) }
            td data-label="Cost" { (view::task_cost(t)) }
            td data-label="Outcome" {
                @if let Some(r) = &t.result { (r.outcome.as_str()) }
            }
        }
    }
}

fn rows(items: &[Task], now: DateTime<Utc>) -> Markup {
    html! {
        tbody id="task-rows" {
            @for t in items { (row(t, now)) }
            @if items.is_empty() {
                tr class="empty" { td colspan="8" { "No tasks match." } }
            }
        }
    }
}

fn filters_form(f: &Filters) -> Markup {
    html! {
        form method="get" action="/" class="filters" role="search" {
            div {
                label for="f-status" { "Status" }
                select id="f-status" name="status" {
                    option value="" { "any" }
                    @for s in TaskStatus::ALL {
                        option value=(s.as_str()) selected[f.status == s.as_str()] { (view::status_label(s)) }
                    }
                }
            }
            div {
                label for="f-label" { "Label" }
                input id="f-label" name="label" value=(f.label) placeholder="key=value";
            }
            div class="grow" {
                label for="f-q" { "Search prompts" }
                input id="f-q" name="q" type="search" value=(f.q) maxlength="200";
            }
            button type="submit" { "Apply" }
        }
    }
}

/// `GET /`: the tasks page.
pub async fn page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let now = Utc::now();
    let f = Filters::parse(raw.as_deref().unwrap_or(""));
    let (listed, status) = match f.store_query() {
        Ok(q) => match state.store.list(&q).await {
            Ok(p) => (Ok(p), StatusCode::OK),
            Err(e) => (Err(ApiError::from(e)), StatusCode::UNPROCESSABLE_ENTITY),
        },
        Err(e) => (Err(e), StatusCode::UNPROCESSABLE_ENTITY),
    };
    if let Err(e @ ApiError::Internal(_)) = listed {
        return Err(e.into());
    }
    let counts = counts(&state, now).await?;
    let live = format!("/ui/rows?{}", f.query(f.cursor.as_deref()));
    let body = html! {
        h1 { "Tasks" }
        (counts_view(&counts))
        (filters_form(&f))
        @match &listed {
            Err(e) => (view::notice("error", &e.to_string())),
            Ok(p) => {
                div class="table-wrap" {
                    table class="tasks" data-live=(live) data-changes="/ui/changes" {
                        caption class="visually-hidden" { "Tasks, newest first" }
                        thead { tr {
                            th scope="col" { "Status" } th scope="col" { "Prompt" }
                            th scope="col" { "Repository" } th scope="col" { "Labels" }
                            th scope="col" { "Age" } th scope="col" { "Duration" }
                            th scope="col" { "Cost" } th scope="col" { "Outcome" }
                        } }
                        (rows(&p.items, now))
                    }
                }
                nav class="pager" aria-label="Pages" {
                    @if f.cursor.is_some() { a href={ "/?" (f.query(None)) } { "← Newest" } }
                    @if let Some(next) = &p.next_cursor {
                        a href={ "/?" (f.query(Some(next))) } rel="next" { "Older →" }
                    }
                }
            }
        }
    };
    let shell = Shell {
        title: "Tasks",
        nav: Nav::Tasks,
        logout_csrf: state.tokens.is_enabled().then_some(csrf.0.as_str()),
    };
    Ok(view::respond(status, view::page(shell, body)))
}

/// `GET /ui/rows`: the counts and the rows of the tasks page for the same filters, for the
/// page's script to swap in.
pub async fn fragment(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, PageError> {
    let now = Utc::now();
    let f = Filters::parse(raw.as_deref().unwrap_or(""));
    let page = state.store.list(&f.store_query()?).await?;
    let counts = counts(&state, now).await?;
    let body = html! {
        (counts_view(&counts))
        table { (rows(&page.items, now)) }
    };
    Ok(view::respond(StatusCode::OK, body))
}
