//! The resume loop against scripted connections, in virtual time.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::Duration;

use futures::stream::{self, BoxStream};
use tokio::time::Instant;

use super::*;

type Chunk = Result<&'static [u8], ClientError>;

fn ok(s: &'static str) -> Chunk {
    Ok(s.as_bytes())
}

fn err(kind: ExitKind, message: &str) -> ClientError {
    ClientError {
        kind,
        message: message.into(),
    }
}

fn broken() -> Chunk {
    Err(err(ExitKind::Unreachable, "connection reset"))
}

/// Plays one scripted connection per `connect`, recording the `Last-Event-ID` of each.
struct Server {
    script: RefCell<VecDeque<Result<Vec<Chunk>, ClientError>>>,
    asked: RefCell<Vec<Option<i64>>>,
}

impl Server {
    fn new(script: Vec<Result<Vec<Chunk>, ClientError>>) -> Self {
        Server {
            script: RefCell::new(script.into()),
            asked: RefCell::default(),
        }
    }

    async fn connect(&self, last: Option<i64>) -> Result<BoxStream<'static, Chunk>, ClientError> {
        self.asked.borrow_mut().push(last);
        let next = self.script.borrow_mut().pop_front();
        let chunks = next.expect("no more connections scripted")?;
        Ok(stream::iter(chunks)
            .then(|c| async move {
                match c {
                    Ok(s) if s == HANG.as_bytes() => std::future::pending().await,
                    Ok(s) if s == PAUSE.as_bytes() => {
                        tokio::time::sleep(IDLE_LIMIT - Duration::from_secs(1)).await;
                        Ok(&b""[..])
                    }
                    c => c,
                }
            })
            .boxed())
    }

    /// Follows (or not) to the end; returns what was shown as `event:data` and the outcome.
    async fn run(&self, follow: bool) -> (Vec<String>, Result<(), ClientError>) {
        let mut shown = Vec::new();
        let r = read_events(
            |last| self.connect(last),
            follow,
            |ev| {
                shown.push(format!("{}:{}", ev.event, ev.data));
            },
        )
        .await;
        (shown, r)
    }
}

/// A chunk that never comes: the connection hangs, half-open.
const HANG: &str = "\u{1}hang";
/// Nothing for a little less than [`IDLE_LIMIT`].
const PAUSE: &str = "\u{1}pause";

const END: &str = "event: end\ndata: {\"status\":\"succeeded\"}\n\n";

#[tokio::test(start_paused = true)]
async fn a_drop_mid_event_resumes_after_the_last_whole_event() {
    let server = Server::new(vec![
        Ok(vec![
            ok("id: 1\nevent: assistant\ndata: a\n\nid: 2\nevent: user\nda"),
            ok("ta: b\n\nid: 3\nevent: assistant\ndata: c"), // cut inside event 3
            broken(),
        ]),
        // The server resumes after 2: event 3 comes whole, then the end.
        Ok(vec![ok("id: 3\nevent: assistant\ndata: c\n\n"), ok(END)]),
    ]);
    let (shown, r) = server.run(true).await;
    r.unwrap();
    assert_eq!(
        shown,
        [
            "assistant:a",
            "user:b",
            "assistant:c",
            "end:{\"status\":\"succeeded\"}"
        ]
    );
    assert_eq!(*server.asked.borrow(), [None, Some(2)]);
}

#[tokio::test(start_paused = true)]
async fn events_sent_again_are_not_shown_twice_and_end_and_error_events_are_kept() {
    // A server that replays from the start on each connection; `error` and `end` carry no
    // id of their own (they inherit the previous event's) and are shown all the same.
    let server = Server::new(vec![
        Ok(vec![ok("id: 1\ndata: a\n\nid: 2\ndata: b\n\n"), broken()]),
        Ok(vec![
            ok("id: 1\ndata: a\n\nid: 2\ndata: b\n\nid: 3\ndata: c\n\n"),
            ok("event: error\ndata: store hiccup\n\n"),
            ok(END),
        ]),
    ]);
    let (shown, r) = server.run(true).await;
    r.unwrap();
    assert_eq!(
        shown,
        [
            "message:a",
            "message:b",
            "message:c",
            "error:store hiccup",
            "end:{\"status\":\"succeeded\"}"
        ]
    );
    assert_eq!(*server.asked.borrow(), [None, Some(2)]);
}

#[tokio::test(start_paused = true)]
async fn following_a_stream_closed_before_end_reconnects() {
    let server = Server::new(vec![
        Ok(vec![ok("id: 7\ndata: a\n\n")]), // clean close, no `end`
        Ok(vec![ok("id: 8\ndata: b\n\n"), ok(END)]),
    ]);
    let (shown, r) = server.run(true).await;
    r.unwrap();
    assert_eq!(shown.len(), 3, "{shown:?}");
    assert_eq!(*server.asked.borrow(), [None, Some(7)]);
}

#[tokio::test(start_paused = true)]
async fn without_follow_a_closed_stream_is_the_end_but_a_drop_still_resumes() {
    let server = Server::new(vec![Ok(vec![ok("id: 1\ndata: a\n\n")])]);
    let (shown, r) = server.run(false).await;
    r.unwrap();
    assert_eq!(shown, ["message:a"]);

    let server = Server::new(vec![
        Ok(vec![ok("id: 1\ndata: a\n\n"), broken()]),
        Ok(vec![ok("id: 2\ndata: b\n\n")]),
    ]);
    let (shown, r) = server.run(false).await;
    r.unwrap();
    assert_eq!(shown, ["message:a", "message:b"]);
    assert_eq!(*server.asked.borrow(), [None, Some(1)]);
}

#[tokio::test(start_paused = true)]
async fn the_first_connection_failing_is_returned_at_once() {
    let server = Server::new(vec![Err(err(ExitKind::Unreachable, "cannot reach"))]);
    let t0 = Instant::now();
    let (shown, r) = server.run(true).await;
    let e = r.unwrap_err();
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ExitKind::Unreachable, "cannot reach")
    );
    assert!(shown.is_empty());
    assert_eq!(server.asked.borrow().len(), 1);
    assert_eq!(t0.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_server_down_while_reconnecting_is_retried_with_growing_delays_then_given_up() {
    let mut script = vec![Ok(vec![ok("id: 1\ndata: a\n\n"), broken()])];
    for i in 0..MAX_RECONNECTS {
        script.push(Err(if i % 2 == 0 {
            err(ExitKind::Unreachable, "connection refused")
        } else {
            err(ExitKind::Server, "server error 503: no details")
        }));
    }
    let server = Server::new(script);
    let t0 = Instant::now();
    let (shown, r) = server.run(true).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, ExitKind::Unreachable);
    assert!(
        e.message.starts_with("lost the event stream"),
        "{}",
        e.message
    );
    assert!(
        e.message.ends_with("server error 503: no details"),
        "{}",
        e.message
    );
    assert_eq!(shown, ["message:a"]);
    let asked = server.asked.borrow();
    assert_eq!(asked.len(), 1 + MAX_RECONNECTS);
    assert!(asked[1..].iter().all(|l| *l == Some(1)), "{asked:?}");
    // Backoff, not a busy loop: at least FIRST_DELAY·(1+2+4+...), capped at MAX_DELAY each.
    let least: Duration = (0..MAX_RECONNECTS as u32)
        .map(|i| (FIRST_DELAY * 2u32.pow(i)).min(MAX_DELAY))
        .sum();
    let waited = t0.elapsed();
    assert!(waited >= least, "waited {waited:?} < {least:?}");
    assert!(waited <= least * 2 + MAX_DELAY, "waited {waited:?}");
}

#[tokio::test(start_paused = true)]
async fn new_events_renew_the_reconnect_budget() {
    // Each connection brings one new event and then breaks: far more drops than
    // MAX_RECONNECTS, but never MAX_RECONNECTS in a row without progress.
    let ids: Vec<&'static str> = (1..=3 * MAX_RECONNECTS)
        .map(|i| &*format!("id: {i}\ndata: e{i}\n\n").leak())
        .collect();
    let mut script: Vec<_> = ids.iter().map(|e| Ok(vec![ok(e), broken()])).collect();
    script.push(Ok(vec![ok(END)]));
    let server = Server::new(script);
    let (shown, r) = server.run(true).await;
    r.unwrap();
    assert_eq!(shown.len(), 3 * MAX_RECONNECTS + 1);
}

#[tokio::test(start_paused = true)]
async fn a_refusal_while_reconnecting_is_final() {
    let server = Server::new(vec![
        Ok(vec![ok("id: 1\ndata: a\n\n"), broken()]),
        Err(err(ExitKind::NotFound, "not found: no such task")),
    ]);
    let (_, r) = server.run(true).await;
    let e = r.unwrap_err();
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ExitKind::NotFound, "not found: no such task")
    );
    assert_eq!(server.asked.borrow().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_stream_is_reconnected_too() {
    let server = Server::new(vec![
        Ok(vec![
            ok("id: 1\ndata: a\n\n"),
            Ok(&[b'd', b':', 0xff, b'\n', b'\n']),
        ]),
        Ok(vec![ok(END)]),
    ]);
    let (shown, r) = server.run(true).await;
    r.unwrap();
    assert_eq!(shown, ["message:a", "end:{\"status\":\"succeeded\"}"]);
    assert_eq!(*server.asked.borrow(), [None, Some(1)]);
}

#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_dropped_after_the_idle_limit_but_keep_alives_keep_it() {
    let server = Server::new(vec![
        Ok(vec![
            ok("id: 1\ndata: a\n\n"),
            ok(PAUSE),
            ok(": keep-alive\n\n"),
            ok(PAUSE),
            ok(": keep-alive\n\n"),
            ok(PAUSE),
            ok("id: 2\ndata: b\n\n"),
            ok(HANG),
        ]),
        Ok(vec![ok(END)]),
    ]);
    let t0 = Instant::now();
    let (shown, r) = server.run(true).await;
    r.unwrap();
    assert_eq!(shown.len(), 3, "{shown:?}");
    // Three pauses just under the limit did not cut it; the hang did, after the limit.
    assert_eq!(*server.asked.borrow(), [None, Some(2)]);
    let pauses = (IDLE_LIMIT - Duration::from_secs(1)) * 3;
    assert!(t0.elapsed() >= pauses + IDLE_LIMIT, "{:?}", t0.elapsed());
    assert!(
        t0.elapsed() <= pauses + IDLE_LIMIT + MAX_DELAY * 2,
        "{:?}",
        t0.elapsed()
    );
}
