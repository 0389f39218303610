//! Talking back to the orchestrator: batched event delivery
//! (`POST {url}/api/v1/tasks/{id}/worker/events`) and the final result
//! (`PUT {url}/api/v1/tasks/{id}/worker/result`), both with the per-task bearer token.
//!
//! Retries with exponential backoff on connection errors, 5xx and 429 for a bounded time;
//! other 4xx (401/404/409 …) are final: logged, and the worker keeps running. The server
//! ignores already-received sequence numbers, so re-sending a batch is safe.

use std::time::Duration;

use ao_core::task::{TaskId, TaskResult};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::CallbackConfig;
use crate::events::Numbered;

const MAX_BATCH: usize = 100;
const BATCH_WINDOW: Duration = Duration::from_millis(200);

/// Why a callback request failed for good. Never contains the token.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("orchestrator refused the request with HTTP {0}")]
    Refused(u16),
    #[error("orchestrator unreachable after retries: {0}")]
    GaveUp(String),
}

/// A configured callback target.
#[derive(Clone)]
pub struct Callback {
    client: reqwest::Client,
    base: String,
    token: secrecy::SecretString,
    retry_budget: Duration,
}

impl Callback {
    pub fn new(cfg: &CallbackConfig, task_id: TaskId, retry_budget: Duration) -> Self {
        Callback {
            client: crate::http_client(),
            base: format!(
                "{}/api/v1/tasks/{task_id}/worker",
                cfg.url.trim_end_matches('/')
            ),
            token: cfg.token.clone(),
            retry_budget,
        }
    }

    /// Sends one batch of events (contiguous sequence numbers).
    pub async fn send_events(&self, batch: &[Numbered]) -> Result<(), CallbackError> {
        let first_seq = batch.first().map(|e| e.0).unwrap_or(1);
        let events: Vec<&Value> = batch.iter().map(|e| &e.1).collect();
        let body = json!({"first_seq": first_seq, "events": events});
        let url = format!("{}/events", self.base);
        self.with_retry("events", || self.client.post(&url).json(&body))
            .await
    }

    /// Reports the final result.
    pub async fn put_result(&self, result: &TaskResult) -> Result<(), CallbackError> {
        let url = format!("{}/result", self.base);
        self.with_retry("result", || self.client.put(&url).json(result))
            .await
    }

    async fn with_retry(
        &self,
        what: &'static str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(), CallbackError> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(250);
        loop {
            let last = match build().bearer_auth(self.token.expose_secret()).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => {
                    let s = r.status().as_u16();
                    if s != 429 && !(500..600).contains(&s) {
                        tracing::warn!(what, status = s, "orchestrator refused callback");
                        return Err(CallbackError::Refused(s));
                    }
                    format!("HTTP {s}")
                }
                Err(e) => classify(&e),
            };
            if started.elapsed() + delay > self.retry_budget {
                tracing::warn!(what, error = %last, "giving up on callback");
                return Err(CallbackError::GaveUp(last));
            }
            tracing::debug!(what, error = %last, delay_ms = delay.as_millis() as u64, "callback failed, retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(8));
        }
    }
}

/// A short description of a transport error (no URL: it is not secret, but keep it short).
fn classify(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        "transport error".into()
    }
}

/// Drains the event queue, batching up to 100 events or 200 ms, until the queue closes.
/// Without a callback (or after it failed for good) events are only drained.
pub async fn run_sender(callback: Option<Callback>, mut rx: mpsc::UnboundedReceiver<Numbered>) {
    let mut active = callback;
    let mut batch: Vec<Numbered> = Vec::with_capacity(MAX_BATCH);
    loop {
        match rx.recv().await {
            Some(e) => batch.push(e),
            None => return,
        }
        let deadline = Instant::now() + BATCH_WINDOW;
        let mut closed = false;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(e)) => batch.push(e),
                Ok(None) => {
                    closed = true;
                    break;
                }
                Err(_) => break,
            }
        }
        if let Some(cb) = &active
            && let Err(e) = cb.send_events(&batch).await
        {
            tracing::warn!(error = %e, "event forwarding disabled; events still go to stdout");
            active = None;
        }
        batch.clear();
        if closed {
            return;
        }
    }
}
