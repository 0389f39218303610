//! Push, not poll: `GET /ui/changes` tells an open page that what it shows has changed, so
//! its script re-fetches the fragment (rows, or a task's status) only then.
//!
//! - `/ui/changes`: the task list changed (a task was created, or changed status, cancel flag
//!   or result), from the store's list subscription; a chatty agent's output never wakes it.
//! - `/ui/changes?task=ID`: that task changed, output included (its page shows the status
//!   timeline and the result).
//!
//! Each stream begins with one `changed` event, so a change between the page's render and the
//! stream's subscription is not lost. A burst of changes is one `changed` event: after a change the stream waits [`COALESCE`]
//! before it says so, so a page re-fetches at most about twice a second however busy the
//! server is. The event says only `changed`; what changed is read through the normal handlers.

use std::convert::Infallible;
use std::time::Duration;

use ao_core::store::{ListSubscription, Subscription};
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::stream::{self, Stream};
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiError;
use crate::output::existing;

/// How long a stream gathers changes before it sends one event for them.
pub const COALESCE: Duration = Duration::from_millis(500);

#[derive(Debug, Deserialize)]
pub struct ChangesQuery {
    /// Follow this task instead of the list.
    task: Option<String>,
}

enum Feed {
    List(ListSubscription),
    Task(Subscription),
}

impl Feed {
    async fn changed(&mut self) {
        match self {
            Feed::List(s) => s.changed().await,
            Feed::Task(s) => s.changed().await,
        }
    }

    fn mark_seen(&mut self) {
        match self {
            Feed::List(s) => s.mark_seen(),
            Feed::Task(s) => s.mark_seen(),
        }
    }
}

/// `GET /ui/changes[?task=ID]`: a `changed` event after each (coalesced) burst of changes.
pub async fn changes(
    State(state): State<AppState>,
    Query(q): Query<ChangesQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let feed = match q.task {
        Some(id) => Feed::Task(state.store.subscribe(existing(&state, &id).await?)),
        None => Feed::List(state.store.subscribe_list()),
    };
    // The first event comes at once: the page was rendered before this stream subscribed,
    // and a change in between would otherwise never be told.
    let s = stream::unfold((feed, true), |(mut feed, first)| async move {
        if !first {
            feed.changed().await;
            tokio::time::sleep(COALESCE).await;
        }
        feed.mark_seen();
        // A browser dispatches no event without data (the SSE spec), so it carries a word.
        Some((
            Ok(Event::default().event("changed").data("changed")),
            (feed, false),
        ))
    });
    Ok(Sse::new(s).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
