//! The CLI's event follower when the connection drops: against a fake server on 127.0.0.1:0
//! that cuts its SSE stream on cue, `tasks events -f` and `tasks wait` reconnect sending
//! `Last-Event-ID` with the last event they showed, print every event once and in order, and
//! end on the final `end` event. A fake rather than the real server because the real one
//! cannot be made to break a connection in the middle of an event.

use std::sync::{Arc, Mutex};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::run_cli;

const TASK: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
/// The task's events are 1..=EVENTS.
const EVENTS: i64 = 6;

/// What one connection to the events route does, after the events it was told to send.
#[derive(Clone, Copy, Debug)]
enum Then {
    /// Send the first bytes of the next event, then drop the socket mid-chunk.
    CutMidEvent,
    /// Close the chunked body cleanly, with no `end` event (as a proxy timing out might).
    CloseEarly,
    /// Send the `end` event and close.
    End,
}

/// One connection's script: `Send(n)` events after the client's `Last-Event-ID`, then `Then`;
/// or answer 503 without a stream.
#[derive(Clone, Copy, Debug)]
enum Conn {
    Send(i64, Then),
    Unavailable,
}

/// One request the fake server saw.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    target: String,
    last_event_id: Option<String>,
}

struct FakeServer {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeServer {
    /// Serves `GET /api/v1/tasks/{TASK}/events` by `script` (one entry per connection, in
    /// order) and `GET /api/v1/tasks/{TASK}` with a succeeded task.
    async fn start(script: Vec<Conn>) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut script = script.into_iter();
            loop {
                let (socket, _) = listener.accept().await.unwrap();
                let mut socket = BufReader::new(socket);
                let req = read_head(&mut socket).await;
                log.lock().unwrap().push(req.clone());
                let socket = socket.into_inner();
                if req
                    .target
                    .starts_with(&format!("/api/v1/tasks/{TASK}/events"))
                {
                    let conn = script.next().expect("more connections than scripted");
                    serve_events(socket, &req, conn).await;
                } else {
                    serve_task(socket).await;
                }
            }
        });
        FakeServer { base, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn read_head(socket: &mut BufReader<TcpStream>) -> Seen {
    let mut request_line = String::new();
    socket.read_line(&mut request_line).await.unwrap();
    let target = request_line
        .split_whitespace()
        .nth(1)
        .expect("a request target")
        .to_string();
    let mut last_event_id = None;
    loop {
        let mut line = String::new();
        socket.read_line(&mut line).await.unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("last-event-id")
        {
            last_event_id = Some(value.trim().to_string());
        }
    }
    Seen {
        target,
        last_event_id,
    }
}

/// The SSE text of event `seq`, as the real server writes it.
fn event(seq: i64) -> String {
    let data = json!({"type": "assistant", "n": seq, "message": {"content": []}});
    format!("id: {seq}\nevent: assistant\ndata: {data}\n\n")
}

fn chunk(s: &str) -> String {
    format!("{:x}\r\n{s}\r\n", s.len())
}

async fn serve_events(mut socket: TcpStream, req: &Seen, conn: Conn) {
    let Conn::Send(count, then) = conn else {
        let body = r#"{"error":{"code":"unavailable","message":"restarting"}}"#;
        let resp = format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(resp.as_bytes()).await.unwrap();
        return;
    };
    let after: i64 = req
        .last_event_id
        .as_deref()
        .map_or(0, |v| v.parse().expect("a numeric Last-Event-ID"));
    let mut out = String::from(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
    );
    let last = (after + count).min(EVENTS);
    for seq in after + 1..=last {
        out.push_str(&chunk(&event(seq)));
    }
    match then {
        Then::CutMidEvent => {
            // A chunk that promises the whole next event, of which only half is sent.
            let next = event(last + 1);
            out.push_str(&format!("{:x}\r\n{}", next.len(), &next[..next.len() / 2]));
        }
        Then::CloseEarly => out.push_str("0\r\n\r\n"),
        Then::End => {
            let end = json!({"status": "succeeded", "reason": "done"});
            out.push_str(&chunk(&format!("event: end\ndata: {end}\n\n")));
            out.push_str("0\r\n\r\n");
        }
    }
    socket.write_all(out.as_bytes()).await.unwrap();
    socket.flush().await.unwrap();
    // Dropping the socket here closes it: mid-chunk for CutMidEvent.
}

async fn serve_task(mut socket: TcpStream) {
    let body = json!({
        "id": TASK, "status": "succeeded", "reason": "done", "prompt": "resumed",
        "created_at": "2026-01-01T00:00:00Z",
    })
    .to_string();
    let resp = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(resp.as_bytes()).await.unwrap();
}

/// The script of both tests: a cut in the middle of event 3, a clean close before the end, a
/// 503 while "restarting", then the rest and `end`.
fn dropping_script() -> Vec<Conn> {
    vec![
        Conn::Send(2, Then::CutMidEvent),
        Conn::Send(2, Then::CloseEarly),
        Conn::Unavailable,
        Conn::Send(EVENTS, Then::End),
    ]
}

fn assert_resumed(seen: &[Seen], events_path: &str) {
    let events: Vec<_> = seen
        .iter()
        .filter(|s| s.target.starts_with(events_path))
        .collect();
    let ids: Vec<Option<&str>> = events.iter().map(|s| s.last_event_id.as_deref()).collect();
    // First without, then after 2 (event 3 was cut), then after 4, twice (the 503).
    assert_eq!(ids, [None, Some("2"), Some("4"), Some("4")], "{seen:#?}");
    assert!(
        events.iter().all(|s| s.target.contains("follow=true")),
        "{seen:#?}"
    );
}

#[tokio::test]
async fn events_follow_resumes_with_last_event_id_without_duplicates_or_gaps() {
    let server = FakeServer::start(dropping_script()).await;
    let out = run_cli(
        &server.base,
        None,
        &["tasks", "events", "-f", TASK, "-o", "json"],
        None,
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let ns: Vec<i64> = out
        .stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("each line is an event");
            v["n"].as_i64().expect("the event's number")
        })
        .collect();
    assert_eq!(ns, (1..=EVENTS).collect::<Vec<_>>(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    assert_resumed(&server.seen(), &format!("/api/v1/tasks/{TASK}/events"));

    // The readable form ends on the `end` event's line.
    let server = FakeServer::start(dropping_script()).await;
    let out = run_cli(&server.base, None, &["tasks", "events", "-f", TASK], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout.lines().last(),
        Some("task succeeded (done)"),
        "{out:?}"
    );
    assert_resumed(&server.seen(), &format!("/api/v1/tasks/{TASK}/events"));
}

#[tokio::test]
async fn wait_survives_dropped_connections_and_reports_the_task() {
    let server = FakeServer::start(dropping_script()).await;
    let out = run_cli(&server.base, None, &["tasks", "wait", TASK], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("Status:") && l.ends_with("succeeded")),
        "{out:?}"
    );
    let seen = server.seen();
    assert_resumed(&seen, &format!("/api/v1/tasks/{TASK}/events"));
    assert_eq!(seen.last().unwrap().target, format!("/api/v1/tasks/{TASK}"));
}
