//! Following a task live: reading the server's SSE stream (resuming with `Last-Event-ID` if the
//! connection drops), rendering events, and a progress line while waiting.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use super::Output;
use super::api::{Api, ClientError, ExitKind};
use super::render::{elapsed, event_line, print_task};

/// One parsed SSE message.
#[derive(Debug, Default, PartialEq)]
pub struct SseMessage {
    pub id: Option<i64>,
    pub event: String,
    pub data: String,
}

/// Incremental SSE parser: feed bytes, take complete messages.
#[derive(Default)]
pub struct SseParser {
    buf: String,
}

impl SseParser {
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseMessage> {
        self.buf
            .push_str(&String::from_utf8_lossy(bytes).replace("\r\n", "\n"));
        let mut out = Vec::new();
        while let Some(end) = self.buf.find("\n\n") {
            let block: String = self.buf.drain(..end + 2).collect();
            let mut msg = SseMessage::default();
            let mut data = Vec::new();
            for line in block.lines() {
                if line.starts_with(':') {
                    continue;
                }
                let (field, value) = line
                    .split_once(':')
                    .map_or((line, ""), |(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)));
                match field {
                    "id" => msg.id = value.parse().ok(),
                    "event" => msg.event = value.to_string(),
                    "data" => data.push(value.to_string()),
                    _ => {}
                }
            }
            if !data.is_empty() || !msg.event.is_empty() {
                msg.data = data.join("\n");
                out.push(msg);
            }
        }
        out
    }
}

/// Read the task's events until the stream ends (the task ended, or `follow` is off), calling
/// `on` for each. Reconnects a few times if the connection drops.
async fn stream_events(
    api: &Api,
    id: &str,
    follow: bool,
    mut on: impl FnMut(&SseMessage),
) -> Result<(), ClientError> {
    let mut last: Option<i64> = None;
    let mut retries = 0;
    loop {
        let mut resp = api.events(id, follow).await?.bytes_stream();
        let mut parser = SseParser::default();
        let mut ended = false;
        while let Some(chunk) = resp.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(_) if retries < 5 => break,
                Err(e) => return Err(api.transport_error(e)),
            };
            for msg in parser.feed(&chunk) {
                if msg.id.is_some() && msg.id <= last {
                    continue; // replayed after a reconnect
                }
                last = msg.id.or(last);
                ended |= msg.event == "end";
                on(&msg);
            }
        }
        if ended || !follow {
            return Ok(());
        }
        retries += 1;
        if retries > 5 {
            return Err(ClientError {
                kind: ExitKind::Unreachable,
                message: "lost the event stream".into(),
            });
        }
        // The new stream replays from the start; `last` skips what was already shown.
        tokio::time::sleep(Duration::from_millis(500 * retries)).await;
    }
}

pub async fn events(api: &Api, id: &str, follow: bool, raw: bool) -> Result<(), ClientError> {
    let mut out = std::io::stdout().lock();
    stream_events(api, id, follow, |msg| {
        if msg.event == "end" {
            if !raw {
                let v: Value = serde_json::from_str(&msg.data).unwrap_or(Value::Null);
                let _ = writeln!(
                    out,
                    "task {} ({})",
                    v["status"].as_str().unwrap_or("?"),
                    v["reason"].as_str().unwrap_or("?")
                );
            }
            return;
        }
        if raw {
            let _ = writeln!(out, "{}", msg.data);
            return;
        }
        let ev: Value = serde_json::from_str(&msg.data).unwrap_or(Value::Null);
        for line in event_line(&ev) {
            let _ = writeln!(out, "{line}");
        }
    })
    .await
}

/// Progress of a run, as the events tell it.
#[derive(Default)]
struct Progress {
    turns: u64,
    cost: Option<f64>,
    phase: String,
}

impl Progress {
    fn observe(&mut self, ev: &Value) {
        match ev["type"].as_str() {
            Some("assistant") => self.turns += 1,
            Some("result") => {
                self.turns = ev["num_turns"].as_u64().unwrap_or(self.turns);
                self.cost = ev["total_cost_usd"].as_f64().or(self.cost);
            }
            Some("worker") => self.phase = ev["phase"].as_str().unwrap_or_default().to_string(),
            _ => {}
        }
    }

    fn line(&self, started: Instant) -> String {
        let cost = self.cost.map_or(String::new(), |c| format!(" · ${c:.4}"));
        let phase = if self.phase.is_empty() {
            "waiting"
        } else {
            &self.phase
        };
        format!(
            "{phase} · {} · {} turns{cost}",
            elapsed(started.elapsed().as_secs()),
            self.turns
        )
    }
}

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// Wait for the task to end, showing progress; exit 0 only if it succeeded.
pub async fn wait(api: &Api, id: &str, output: Output) -> Result<ExitCode, ClientError> {
    let tty = std::io::stderr().is_terminal() && output != Output::Json;
    let started = Instant::now();
    let mut progress = Progress::default();
    let mut frame = 0usize;
    let mut last_plain = String::new();
    let events = stream_events(api, id, true, |msg| {
        let ev: Value = serde_json::from_str(&msg.data).unwrap_or(Value::Null);
        progress.observe(&ev);
        if output == Output::Json {
            return;
        }
        if tty {
            frame = (frame + 1) % SPINNER.len();
            eprint!("\r\x1b[2K{} {}", SPINNER[frame], progress.line(started));
        } else {
            for line in event_line(&ev) {
                if line != last_plain {
                    eprintln!("{line}");
                    last_plain = line;
                }
            }
        }
    });
    events.await?;
    if tty {
        eprint!("\r\x1b[2K");
    }
    let task = api.get(id).await?;
    print_task(&task, output);
    Ok(match task["status"].as_str() {
        Some("succeeded") => ExitCode::SUCCESS,
        _ => ExitKind::TaskFailed.code(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_split_messages() {
        let mut p = SseParser::default();
        assert!(p.feed(b"id: 1\nevent: assistant\nda").is_empty());
        let msgs = p.feed(b"ta: {\"a\":1}\n\n: keep-alive\n\nevent: end\ndata: {}\n\n");
        assert_eq!(msgs.len(), 2);
        assert_eq!(
            msgs[0],
            SseMessage {
                id: Some(1),
                event: "assistant".into(),
                data: "{\"a\":1}".into()
            }
        );
        assert_eq!(msgs[1].event, "end");
    }
}
