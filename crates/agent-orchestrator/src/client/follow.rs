//! Following a task live: its events as they come (`tasks events`, through [`super::sse`],
//! which resumes with `Last-Event-ID` if the connection drops), rendered, and a progress line
//! while waiting (`tasks wait`, `submit --wait`).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Instant;

use eventsource_stream::Event;
use futures::TryStreamExt;
use serde_json::Value;

use super::Output;
use super::api::{Api, ClientError, ExitKind};
use super::render::{elapsed, event_line, print_task};
use super::sse::read_events;

/// Read the task's events until the stream ends (the task ended, or `follow` is off), calling
/// `on` for each, once, in order. A dropped connection is resumed with `Last-Event-ID`.
async fn stream_events(
    api: &Api,
    id: &str,
    follow: bool,
    on: impl FnMut(&Event),
) -> Result<(), ClientError> {
    let connect = |last: Option<i64>| async move {
        let resp = api.events(id, follow, last).await?;
        Ok(resp.bytes_stream().map_err(|e| api.transport_error(e)))
    };
    read_events(connect, follow, on).await
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
    let quiet = matches!(output, Output::Json | Output::Id);
    let tty = std::io::stderr().is_terminal() && !quiet;
    let started = Instant::now();
    let mut progress = Progress::default();
    let mut frame = 0usize;
    let mut last_plain = String::new();
    let events = stream_events(api, id, true, |msg| {
        let ev: Value = serde_json::from_str(&msg.data).unwrap_or(Value::Null);
        progress.observe(&ev);
        if quiet {
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
