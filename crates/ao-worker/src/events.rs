//! The worker's event stream: every event (Claude Code's stream-json objects, wrapped log
//! lines, and the worker's own progress events) gets a contiguous 1-based sequence number, is
//! printed as a JSON line on stdout (for log collection), and is queued for the callback
//! sender. Emitting never blocks: the queue is unbounded and drained by its own task.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::sync::mpsc;

/// One numbered event.
pub type Numbered = (u64, Value);

/// Hands out sequence numbers and fans events out to stdout and the sender queue.
#[derive(Clone)]
pub struct EventSink {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    next_seq: u64,
    task_id: String,
    print: bool,
    tx: Option<mpsc::UnboundedSender<Numbered>>,
}

impl EventSink {
    /// A sink and the receiving end of its queue.
    pub fn new(task_id: String, print: bool) -> (Self, mpsc::UnboundedReceiver<Numbered>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Inner {
            next_seq: 1,
            task_id,
            print,
            tx: Some(tx),
        };
        (
            EventSink {
                inner: Arc::new(Mutex::new(inner)),
            },
            rx,
        )
    }

    /// Emits an event; returns its sequence number.
    pub fn emit(&self, event: Value) -> u64 {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let seq = g.next_seq;
        g.next_seq += 1;
        if g.print {
            let line = json!({"task_id": g.task_id, "seq": seq, "event": event});
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        if let Some(tx) = &g.tx {
            let _ = tx.send((seq, event));
        }
        seq
    }

    /// Emits `{"type":"worker","phase":…}` merged with the fields of `extra` (an object).
    pub fn phase(&self, phase: &str, extra: Value) {
        let mut ev = json!({"type": "worker", "phase": phase});
        if let (Some(obj), Value::Object(more)) = (ev.as_object_mut(), extra) {
            obj.extend(more);
        }
        self.emit(ev);
    }

    /// Closes the queue: the sender task flushes what is left and ends.
    pub fn close(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).tx = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn numbers_are_contiguous_from_one() {
        let (sink, mut rx) = EventSink::new("t".into(), false);
        let s2 = sink.clone();
        sink.emit(json!({"type": "a"}));
        s2.phase("clone", json!({"x": 1}));
        sink.close();
        s2.close();
        let mut got = Vec::new();
        while let Some(e) = rx.recv().await {
            got.push(e);
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, 1);
        assert_eq!(
            got[1],
            (2, json!({"type": "worker", "phase": "clone", "x": 1}))
        );
    }
}
