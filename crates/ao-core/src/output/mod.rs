//! Copying a worker's output into the store, for every runtime.
//!
//! A runtime only reads bytes (a log file, a pod's log stream) and learns how the worker
//! ended. It hands both to a [`WorkerOutput`], opened from the runtime's [`OutputPipeline`]
//! once per task, and core does the rest, the same way for every runtime:
//! - cuts the bytes into lines ([`MAX_LINE`] at most) and stores them in batches: whatever
//!   has arrived, up to [`OutputConfig::batch_lines`] per `append_logs` call;
//! - resumes without duplicates: the first lines of the output that the store already holds
//!   (`log_count`) are skipped, so a runtime may read its output again from the start after
//!   a restart or a broken stream ([`WorkerOutput::rewind`]);
//! - retries failed store writes with backoff, in order;
//! - reports the worker's end ([`WorkerOutput::exited`], [`WorkerOutput::lost`]) as a
//!   [`RuntimeEvent`] only once every line written before it is stored. This is the rule the
//!   scheduler relies on: when a task is seen terminal, its output is complete.
//!
//! If the store refuses output for good (a permanent error, or retries exhausted), the copy
//! stops for that task, so that no line is ever stored out of order or twice; the number of
//! lines not kept is logged and returned to the runtime, and the end is still reported, since
//! a task must settle even when its output cannot be kept.

mod copier;
mod lines;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use crate::runtime::{EventSender, ExitInfo, RuntimeEvent};
use crate::store::{StoreError, TaskStore};
use crate::task::TaskId;

pub use lines::MAX_LINE;

/// Messages queued between a runtime's [`WorkerOutput`] and its copier; a small bound, so a
/// slow store slows the reader down instead of buffering without limit.
const QUEUE: usize = 64;

/// How output is stored.
#[derive(Debug, Clone)]
pub struct OutputConfig {
    /// At most this many lines per `append_logs` call.
    pub batch_lines: usize,
    /// First pause before retrying a failed store write; it doubles on each retry.
    pub retry_min: Duration,
    /// Longest pause between retries.
    pub retry_max: Duration,
    /// Retries of one store call before giving up.
    pub retry_times: usize,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            batch_lines: 500,
            retry_min: Duration::from_millis(50),
            retry_max: Duration::from_secs(5),
            retry_times: 10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The store refused the output; `lost` lines of it were not stored.
    #[error("storing worker output failed; {lost} lines were not stored")]
    Store {
        lost: u64,
        #[source]
        source: Arc<StoreError>,
    },
    /// The task's output was already ended (or its copier stopped).
    #[error("the task's output is closed")]
    Closed,
}

/// Opens one [`WorkerOutput`] per task. Cheap to clone; a runtime keeps one.
#[derive(Clone)]
pub struct OutputPipeline {
    store: Arc<dyn TaskStore>,
    events: EventSender,
    cfg: OutputConfig,
}

impl OutputPipeline {
    pub fn new(store: Arc<dyn TaskStore>, events: EventSender, cfg: OutputConfig) -> Self {
        OutputPipeline { store, events, cfg }
    }

    /// Start copying a task's output. Lines the store already has are skipped. Needs a Tokio
    /// runtime: the copy runs as its own task, until the output is ended or every handle is
    /// dropped (then the complete lines received are stored and no event is sent).
    pub fn open(&self, task_id: TaskId) -> WorkerOutput {
        let (tx, rx) = mpsc::channel(QUEUE);
        let copier = copier::Copier::new(
            self.store.clone(),
            self.events.clone(),
            self.cfg.clone(),
            task_id,
        );
        let span = tracing::info_span!("worker_output", task_id = %task_id);
        tokio::spawn(copier.run(rx).instrument(span));
        WorkerOutput { task_id, tx }
    }
}

pub(crate) enum Msg {
    Bytes(Vec<u8>),
    Rewind,
    End {
        event: Option<RuntimeEvent>,
        done: oneshot::Sender<Result<(), OutputError>>,
    },
}

/// A runtime's handle on one task's output. Clones feed the same copy, in the order their
/// calls complete; a runtime uses one clone at a time per stream.
#[derive(Clone)]
pub struct WorkerOutput {
    task_id: TaskId,
    tx: mpsc::Sender<Msg>,
}

impl WorkerOutput {
    pub fn task_id(&self) -> TaskId {
        self.task_id
    }

    /// More of the worker's output, as read. Waits when the copy is behind.
    pub async fn write(&self, bytes: Vec<u8>) -> Result<(), OutputError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.send(Msg::Bytes(bytes)).await
    }

    /// The bytes written next are the output read again from its very start (a new stream
    /// after a restart or a broken one): an incomplete line is dropped and lines already
    /// stored are skipped again.
    pub async fn rewind(&self) -> Result<(), OutputError> {
        self.send(Msg::Rewind).await
    }

    /// The worker ended: store the rest (an incomplete last line too), then send
    /// [`RuntimeEvent::Exited`]. Returns once the event is sent.
    pub async fn exited(self, exit: ExitInfo) -> Result<(), OutputError> {
        let task_id = self.task_id;
        self.end(Some(RuntimeEvent::Exited { task_id, exit })).await
    }

    /// The worker vanished: store what was read, then send [`RuntimeEvent::Lost`].
    pub async fn lost(self, message: String) -> Result<(), OutputError> {
        let task_id = self.task_id;
        self.end(Some(RuntimeEvent::Lost { task_id, message }))
            .await
    }

    /// The output is complete but the end is reported some other way (a worker found already
    /// finished after a restart): store the rest and return once it is stored.
    pub async fn finish(self) -> Result<(), OutputError> {
        self.end(None).await
    }

    async fn end(self, event: Option<RuntimeEvent>) -> Result<(), OutputError> {
        let (done, wait) = oneshot::channel();
        self.send(Msg::End { event, done }).await?;
        wait.await.map_err(|_| OutputError::Closed)?
    }

    async fn send(&self, m: Msg) -> Result<(), OutputError> {
        self.tx.send(m).await.map_err(|_| OutputError::Closed)
    }
}
