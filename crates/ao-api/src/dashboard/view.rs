//! The page shell and the small pieces every page shows: status badges (a symbol and the
//! word, not only a colour), relative ages, durations and costs. Everything goes through
//! maud, which escapes every interpolated string, so a prompt or an agent's output can only
//! ever be text. [`PageError`] answers an API error as an HTML page.

use ao_core::lifecycle::TaskStatus;
use ao_core::task::Task;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::assets;
use crate::error::ApiError;
use ao_core::store::StoreError;

/// Which page of the navigation is current.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Tasks,
    Submit,
    Usage,
    None,
}

/// What the shell needs besides the page's content.
pub struct Shell<'a> {
    pub title: &'a str,
    pub nav: Nav,
    /// CSRF token for the logout form; `None` hides the logout button (no tokens, or the
    /// login page itself).
    pub logout_csrf: Option<&'a str>,
}

/// A whole HTML page.
pub fn page(shell: Shell<'_>, content: Markup) -> Markup {
    let link = |nav: Nav, href: &str, label: &str| {
        html! {
            a href=(href) aria-current=[(shell.nav == nav).then_some("page")] { (label) }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (shell.title) " · Agent Orchestrator" }
                link rel="stylesheet" href=(assets::CSS_PATH.as_str());
                script type="module" src=(assets::JS_PATH.as_str()) {}
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header class="top" {
                    a class="brand" href="/" { "Agent Orchestrator" }
                    nav aria-label="Main" {
                        (link(Nav::Tasks, "/", "Tasks"))
                        (link(Nav::Submit, "/new", "Submit"))
                        (link(Nav::Usage, "/usage", "Usage"))
                    }
                    @if let Some(csrf) = shell.logout_csrf {
                        form method="post" action="/logout" class="logout" {
                            input type="hidden" name="csrf" value=(csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main id="main" tabindex="-1" { (content) }
            }
        }
    }
}

/// A rendered page as a response: HTML, never cached (it shows live state).
pub fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut resp = (status, markup.into_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The symbol shown in a status badge, so status never rests on colour alone.
fn symbol(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Queued => "◷",
        TaskStatus::Starting => "▹",
        TaskStatus::Running => "▶",
        TaskStatus::Succeeded => "✓",
        TaskStatus::Failed => "✗",
        TaskStatus::Cancelled => "⊘",
        TaskStatus::TimedOut => "⌛",
    }
}

/// A status as people read it: `timed_out` is "timed out".
pub fn status_label(s: TaskStatus) -> String {
    s.as_str().replace('_', " ")
}

/// A status badge: symbol, word and a colour class.
pub fn badge(s: TaskStatus) -> Markup {
    html! {
        span class={ "badge s-" (s.as_str()) } data-status=(s.as_str()) {
            span aria-hidden="true" { (symbol(s)) " " }
            (status_label(s))
        }
    }
}

/// The first line of a prompt, cut to `max` characters.
pub fn first_line(prompt: &str, max: usize) -> String {
    let line = prompt.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let line = line.trim();
    if line.chars().count() > max {
        let cut: String = line.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        line.to_string()
    }
}

/// "3 min ago", with the exact time in a `<time>` element for a tooltip and screen readers.
pub fn age(at: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    let secs = (now - at).num_seconds().max(0);
    html! {
        time datetime=(at.to_rfc3339()) title=(at.format("%Y-%m-%d %H:%M:%S UTC")) {
            (short_span(secs)) " ago"
        }
    }
}

/// A span of seconds in its largest sensible unit: `42s`, `3m 5s`, `2h 10m`, `4d 3h`.
pub fn short_span(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h {}m", secs / 3600, (secs % 3600) / 60),
        _ => format!("{}d {}h", secs / 86400, (secs % 86400) / 3600),
    }
}

/// How long the task ran (or has been running); empty before it started.
pub fn duration(t: &Task, now: DateTime<Utc>) -> String {
    match (t.started_at, t.finished_at) {
        (Some(s), Some(f)) => short_span((f - s).num_seconds()),
        (Some(s), None) => short_span((now - s).num_seconds()),
        _ => String::new(),
    }
}

/// A cost in dollars, with four decimals below a dollar (agent runs often cost cents).
pub fn cost(usd: f64) -> String {
    if usd != 0.0 && usd.abs() < 1.0 {
        format!("${usd:.4}")
    } else {
        format!("${usd:.2}")
    }
}

/// The task's reported cost, or nothing.
pub fn task_cost(t: &Task) -> String {
    t.result
        .as_ref()
        .and_then(|r| r.cost_usd)
        .map(cost)
        .unwrap_or_default()
}

/// A short message in a box (errors, notices), announced to screen readers.
pub fn notice(kind: &str, text: &str) -> Markup {
    html! { p class={ "notice " (kind) } role="alert" { (text) } }
}

/// An API error answered as an HTML page (the API's routes answer JSON). 5xx errors are
/// logged with their cause by [`ApiError`]'s own response, and show only that they failed.
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        PageError(e)
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let message = self.0.to_string();
        if status.is_server_error() {
            // Logs the cause; its JSON body is dropped.
            drop(self.0.into_response());
        }
        let shell = Shell {
            title: "Error",
            nav: Nav::None,
            logout_csrf: None,
        };
        let body = html! {
            h1 { (status.canonical_reason().unwrap_or("Error")) }
            (notice("error", &message))
            p { a href="/" { "Back to the tasks" } }
        };
        respond(status, page(shell, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_lines() {
        assert_eq!(short_span(5), "5s");
        assert_eq!(short_span(185), "3m 5s");
        assert_eq!(short_span(7800), "2h 10m");
        assert_eq!(short_span(2 * 86400 + 7200), "2d 2h");
        assert_eq!(first_line("\n  hello world \nnext", 100), "hello world");
        assert_eq!(first_line("abcdef", 4), "abc…");
        assert_eq!(cost(0.0063), "$0.0063");
        assert_eq!(cost(0.0123), "$0.0123");
        assert_eq!(cost(1.5), "$1.50");
        assert_eq!(cost(0.0), "$0.00");
    }

    #[test]
    fn badges_escape_and_carry_words() {
        let b = badge(TaskStatus::TimedOut).into_string();
        assert!(b.contains("timed out") && b.contains("s-timed_out"), "{b}");
        let p = page(
            Shell {
                title: "<script>",
                nav: Nav::None,
                logout_csrf: None,
            },
            html! { p { "\"><img onerror>" } },
        )
        .into_string();
        assert!(p.contains("&lt;script&gt;") && p.contains("&quot;&gt;&lt;img onerror&gt;"));
        assert!(!p.contains("<img"));
    }
}
