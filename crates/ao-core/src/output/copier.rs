//! The task that owns one worker's output copy: it takes the runtime's messages in order,
//! turns bytes into lines, skips what the store already has, stores the rest in batches with
//! retries, and sends the end event last.

use std::sync::Arc;

use backon::{ExponentialBuilder, Retryable};
use tokio::sync::mpsc;
use tracing::{error, warn};

use super::lines::LineSplitter;
use super::{Msg, OutputConfig, OutputError, QUEUE};
use crate::runtime::EventSender;
use crate::store::{StoreError, TaskStore};
use crate::task::TaskId;

pub(crate) struct Copier {
    store: Arc<dyn TaskStore>,
    events: EventSender,
    cfg: OutputConfig,
    task_id: TaskId,
    splitter: LineSplitter,
    /// Lines the store holds (known once `log_count` answered).
    stored: i64,
    /// Lines of the current pass over the output seen so far.
    seen: i64,
    /// New lines not yet stored, in order.
    pending: Vec<String>,
    /// Set once the store refused output for good: nothing more is stored.
    failed: Option<Arc<StoreError>>,
    /// Lines not stored because of `failed`.
    lost: u64,
}

impl Copier {
    pub(crate) fn new(
        store: Arc<dyn TaskStore>,
        events: EventSender,
        cfg: OutputConfig,
        task_id: TaskId,
    ) -> Self {
        Copier {
            store,
            events,
            cfg,
            task_id,
            splitter: LineSplitter::default(),
            stored: 0,
            seen: 0,
            pending: Vec::new(),
            failed: None,
            lost: 0,
        }
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        self.resume().await;
        let mut msgs = Vec::with_capacity(QUEUE);
        let mut lines = Vec::new();
        loop {
            if rx.recv_many(&mut msgs, QUEUE).await == 0 {
                // Every handle is gone without an end (shutdown): keep the complete lines.
                self.flush().await;
                return;
            }
            for m in msgs.drain(..) {
                match m {
                    Msg::Bytes(b) => {
                        self.splitter.push(&b, &mut lines);
                        for l in lines.drain(..) {
                            self.accept(l);
                        }
                        if self.pending.len() >= self.cfg.batch_lines.max(1) {
                            self.flush().await;
                        }
                    }
                    Msg::Rewind => {
                        self.flush().await;
                        self.splitter.reset();
                        self.seen = 0;
                    }
                    Msg::End { event, done } => {
                        if let Some(l) = self.splitter.finish() {
                            self.accept(l);
                        }
                        self.flush().await;
                        if let Some(ev) = event {
                            // The scheduler may be gone at shutdown; the next start adopts.
                            let _ = self.events.send(ev);
                        }
                        let _ = done.send(self.result());
                        return;
                    }
                }
            }
            // Nothing more has arrived: store what we have, so followers see it now.
            self.flush().await;
        }
    }

    /// Learn how many lines the store already has.
    async fn resume(&mut self) {
        let (store, id) = (self.store.clone(), self.task_id);
        match self
            .retrying(|| store.log_count(id), "reading the stored line count")
            .await
        {
            Ok(n) => self.stored = n,
            Err(e) => self.give_up(e),
        }
    }

    fn accept(&mut self, line: String) {
        self.seen += 1;
        if self.failed.is_some() {
            self.lost += 1;
        } else if self.seen > self.stored + self.pending.len() as i64 {
            self.pending.push(line);
        }
    }

    async fn flush(&mut self) {
        while !self.pending.is_empty() && self.failed.is_none() {
            let n = self.pending.len().min(self.cfg.batch_lines.max(1));
            let batch: Vec<String> = self.pending[..n].to_vec();
            let (store, id) = (self.store.clone(), self.task_id);
            let r = self
                .retrying(|| store.append_logs(id, &batch), "storing worker output")
                .await;
            match r {
                Ok(()) => {
                    self.stored += n as i64;
                    self.pending.drain(..n);
                }
                Err(e) => self.give_up(e),
            }
        }
    }

    fn give_up(&mut self, e: StoreError) {
        self.lost += self.pending.len() as u64;
        self.pending.clear();
        error!(task_id = %self.task_id, error = %e, "the store refused worker output; the rest of this task's output is not stored");
        self.failed = Some(Arc::new(e));
    }

    fn result(&self) -> Result<(), OutputError> {
        match &self.failed {
            None => Ok(()),
            Some(e) => {
                error!(task_id = %self.task_id, lost = self.lost, "worker output incomplete in the store");
                Err(OutputError::Store {
                    lost: self.lost,
                    source: e.clone(),
                })
            }
        }
    }

    /// Run a store call, retrying backend errors (a passing failure) with backoff; other
    /// errors (such as an unknown task) are final at once.
    async fn retrying<T, F, Fut>(&self, call: F, what: &'static str) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.cfg.retry_min)
            .with_max_delay(self.cfg.retry_max)
            .with_max_times(self.cfg.retry_times);
        let id = self.task_id;
        call.retry(backoff)
            .when(|e| matches!(e, StoreError::Backend(_)))
            .notify(|e, pause| {
                warn!(task_id = %id, error = %e, retry_in_ms = pause.as_millis() as u64, "{what} failed; retrying");
            })
            .await
    }
}
