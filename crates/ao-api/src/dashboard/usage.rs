//! The usage page: the last fortnight of finished tasks per UTC day, as three server-drawn
//! SVG charts (tasks by final status, cost, run-time percentiles), each with its table.

use ao_core::usage::{self, DayUsage, FINAL_STATUSES};
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use maud::{Markup, html};

use super::charts;
use super::session::CsrfToken;
use super::view::{self, Nav, PageError, Shell};
use crate::AppState;

/// Days the page covers, today included.
const DAYS: u32 = 14;

fn secs(v: f64) -> String {
    format!("{v:.1}s")
}

fn tables(days: &[DayUsage]) -> (Markup, Markup, Markup) {
    let tasks = html! {
        table class="data" {
            caption { "Tasks finished per day" }
            thead { tr { th scope="col" { "Day" } @for s in FINAL_STATUSES { th scope="col" { (view::status_label(s)) } } th scope="col" { "Total" } } }
            tbody { @for d in days { tr {
                th scope="row" { (d.day) }
                @for n in d.by_status { td { (n) } }
                td { (d.finished()) }
            } } }
        }
    };
    let cost = html! {
        table class="data" {
            caption { "Cost per day" }
            thead { tr { th scope="col" { "Day" } th scope="col" { "Cost (USD)" } } }
            tbody { @for d in days { tr { th scope="row" { (d.day) } td { (view::cost(d.cost_usd)) } } } }
        }
    };
    let durations = html! {
        table class="data" {
            caption { "Run time percentiles per day" }
            thead { tr { th scope="col" { "Day" } th scope="col" { "p50" } th scope="col" { "p90" } th scope="col" { "p99" } } }
            tbody { @for d in days { tr {
                th scope="row" { (d.day) }
                @if let Some(p) = d.durations { td { (secs(p.p50)) } td { (secs(p.p90)) } td { (secs(p.p99)) } }
                @else { td { "–" } td { "–" } td { "–" } }
            } } }
        }
    };
    (tasks, cost, durations)
}

fn legend() -> Markup {
    html! {
        ul class="legend" aria-hidden="true" {
            @for s in FINAL_STATUSES { li { span class={ "swatch s-" (s.as_str()) } {} (view::status_label(s)) } }
        }
    }
}

/// `GET /usage`.
pub async fn page(
    State(state): State<AppState>,
    Extension(csrf): Extension<CsrfToken>,
) -> Result<Response, PageError> {
    let now = Utc::now();
    let since = usage::window_start(now, DAYS);
    let days = usage::daily(&state.store.finished_since(since).await?, since, now);
    let (tasks, cost, durations) = tables(&days);
    let body = html! {
        h1 { "Usage" }
        p class="muted" { "The last " (DAYS) " days (UTC), by the day each task finished." }
        section aria-labelledby="u-tasks" {
            h2 id="u-tasks" { "Tasks per day by final status" }
            (legend())
            (charts::tasks_per_day(&days))
            details { summary { "Table" } (tasks) }
        }
        section aria-labelledby="u-cost" {
            h2 id="u-cost" { "Cost per day" }
            (charts::cost_per_day(&days))
            details { summary { "Table" } (cost) }
        }
        section aria-labelledby="u-dur" {
            h2 id="u-dur" { "Run time percentiles" }
            ul class="legend" aria-hidden="true" {
                li { span class="swatch p50" {} "p50 (solid line, circles)" }
                li { span class="swatch p90" {} "p90 (dashed, squares)" }
                li { span class="swatch p99" {} "p99 (dotted, diamonds)" }
            }
            (charts::durations(&days))
            details { summary { "Table" } (durations) }
        }
    };
    let shell = Shell {
        title: "Usage",
        nav: Nav::Usage,
        logout_csrf: state.tokens.is_enabled().then_some(csrf.0.as_str()),
    };
    Ok(view::respond(StatusCode::OK, view::page(shell, body)))
}
