//! Reading a task's event stream (Server-Sent Events) so that a dropped connection loses
//! nothing: the CLI reconnects, sends `Last-Event-ID` with the last event it showed, and the
//! server resumes right after it, as a browser's `EventSource` would.
//!
//! Parsing is `eventsource-stream`'s (the SSE grammar over any byte stream, here reqwest's
//! `bytes_stream()`); the reconnect delays are `backon`'s exponential backoff. This module is
//! the small loop between them. `reqwest-eventsource` would be that loop ready-made, but its
//! 0.6 is built on reqwest 0.12 while the workspace uses 0.13: it would build and link a
//! second HTTP stack, and requests would have to be made with 0.12's client, not [`Api`]'s.
//!
//! [`Api`]: super::api::Api

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::{Stream, StreamExt};

use super::api::{ClientError, ExitKind};

/// Reconnects in a row that bring no new event before the CLI gives up on the stream.
pub const MAX_RECONNECTS: usize = 6;

/// The first reconnect waits about this long (plus jitter); each next one twice as long.
pub const FIRST_DELAY: Duration = Duration::from_millis(250);

/// No reconnect waits longer than this (plus jitter).
pub const MAX_DELAY: Duration = Duration::from_secs(5);

/// A connection on which nothing arrives for this long, not even the server's keep-alive
/// comment (sent every 15 s), is taken for dropped: a half-open connection would otherwise
/// hang the follower forever.
pub const IDLE_LIMIT: Duration = Duration::from_secs(45);

fn delays() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(FIRST_DELAY)
        .with_max_delay(MAX_DELAY)
        .with_max_times(MAX_RECONNECTS)
        .with_jitter()
        .build()
}

/// How one connection ended.
enum Ended {
    /// The server sent the final `end` event.
    End,
    /// The server closed the stream without an `end` event.
    Closed,
    /// The connection broke, or the stream could not be read.
    Dropped(ClientError),
}

/// Reads the event stream until the server's `end` event (or, when `follow` is off, until the
/// server closes the stream), calling `on` once for each event, in order.
///
/// `connect(last_id)` opens one connection, sending `Last-Event-ID: last_id` when it is some.
/// A failure of the first connection is returned as is (the server is unreachable, the task
/// unknown, ...). Once the stream has started, a dropped connection, an unreadable stream or
/// (when following) a stream closed before `end` is reconnected after a backoff; a 5xx or an
/// unreachable server while reconnecting is retried too, any other refusal ends the follow.
/// After [`MAX_RECONNECTS`] reconnects in a row that brought nothing new it gives up.
///
/// Events the server sends again (ids at or below the last one shown) are skipped, so even a
/// server that ignored `Last-Event-ID` would show nothing twice.
pub async fn read_events<C, F, S, B>(
    mut connect: C,
    follow: bool,
    mut on: impl FnMut(&Event),
) -> Result<(), ClientError>
where
    C: FnMut(Option<i64>) -> F,
    F: Future<Output = Result<S, ClientError>>,
    S: Stream<Item = Result<B, ClientError>> + Unpin,
    B: AsRef<[u8]>,
{
    let mut last: Option<i64> = None;
    let mut backoff = delays();
    let mut started = false;
    loop {
        let (ended, progressed) = match connect(last).await {
            Ok(bytes) => read_one(bytes, &mut last, &mut on).await,
            Err(e) if !started || !retryable(&e) => return Err(e),
            Err(e) => (Ended::Dropped(e), false),
        };
        started = true;
        let cause = match ended {
            Ended::End => return Ok(()),
            Ended::Closed if !follow => return Ok(()),
            Ended::Closed => "the server closed the stream before the task ended".to_string(),
            Ended::Dropped(e) => e.message,
        };
        if progressed {
            backoff = delays();
        }
        let Some(delay) = backoff.next() else {
            return Err(ClientError {
                kind: ExitKind::Unreachable,
                message: format!(
                    "lost the event stream ({MAX_RECONNECTS} reconnects brought nothing new): {cause}"
                ),
            });
        };
        tokio::time::sleep(delay).await;
    }
}

/// The server may be restarting: retry. It refused the request itself: do not.
fn retryable(e: &ClientError) -> bool {
    matches!(e.kind, ExitKind::Unreachable | ExitKind::Server)
}

/// One connection: shows its new events; says how it ended and whether it showed anything.
async fn read_one<S, B>(
    bytes: S,
    last: &mut Option<i64>,
    on: &mut impl FnMut(&Event),
) -> (Ended, bool)
where
    S: Stream<Item = Result<B, ClientError>> + Unpin,
    B: AsRef<[u8]>,
{
    let mut events = idle_limited(bytes).eventsource();
    // An event without an `id:` field carries the previous event's id (the SSE rule), so only
    // an id that differs from the previous one is the event's own. The `end` event has none.
    let mut previous_id = String::new();
    let mut progressed = false;
    while let Some(item) = events.next().await {
        let ev = match item {
            Ok(ev) => ev,
            Err(EventStreamError::Transport(e)) => return (Ended::Dropped(e), progressed),
            Err(e) => {
                let e = ClientError {
                    kind: ExitKind::Server,
                    message: format!("unreadable event stream: {e}"),
                };
                return (Ended::Dropped(e), progressed);
            }
        };
        let own_id = (ev.id != previous_id)
            .then(|| ev.id.parse::<i64>().ok())
            .flatten();
        previous_id.clone_from(&ev.id);
        if let Some(id) = own_id {
            if last.is_some_and(|l| id <= l) {
                continue; // sent again after a reconnect
            }
            *last = Some(id);
        }
        progressed = true;
        on(&ev);
        if ev.event == "end" {
            return (Ended::End, progressed);
        }
    }
    (Ended::Closed, progressed)
}

/// The byte stream, ended by an error once nothing has arrived for [`IDLE_LIMIT`]. (Bytes, not
/// events: keep-alive comments count, and the SSE parser never shows them.)
fn idle_limited<S, B>(bytes: S) -> impl Stream<Item = Result<B, ClientError>> + Unpin
where
    S: Stream<Item = Result<B, ClientError>> + Unpin,
{
    Box::pin(futures::stream::unfold(Some(bytes), |bytes| async move {
        let mut bytes = bytes?;
        match tokio::time::timeout(IDLE_LIMIT, bytes.next()).await {
            Ok(Some(item)) => Some((item, Some(bytes))),
            Ok(None) => None,
            Err(_) => {
                let e = ClientError {
                    kind: ExitKind::Unreachable,
                    message: format!(
                        "nothing received for {} s, not even a keep-alive",
                        IDLE_LIMIT.as_secs()
                    ),
                };
                Some((Err(e), None))
            }
        }
    }))
}

#[cfg(test)]
#[path = "sse_tests.rs"]
mod tests;
