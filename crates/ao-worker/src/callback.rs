//! Talking back to the orchestrator: batched event delivery ([`EventBatch`] to
//! [`callback::events_url`]) and the final result (`PUT` [`callback::result_url`]), both with
//! the per-task bearer token. The routes and bodies are the contract in
//! [`ao_core::worker::callback`].
//!
//! Retries under core's [`RetryPolicy`] (exponential, jittered backoff; the server's
//! `Retry-After` honoured) on connection errors, 5xx and 429 for a bounded time; other 4xx (401/404/409 …) are final: logged, and the worker keeps running.
//! The server ignores already-received sequence numbers, so re-sending a batch is safe.

use std::time::Duration;

use ao_core::retry::{Retry, RetryPolicy, parse_retry_after};
use ao_core::task::{TaskId, TaskResult};
use ao_core::worker::{EventBatch, callback};
use secrecy::ExposeSecret;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::CallbackConfig;
use crate::events::Numbered;

const MAX_BATCH: usize = 100;
const BATCH_WINDOW: Duration = Duration::from_millis(200);
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(8);

/// Why a callback request failed for good. Never contains the token.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("orchestrator refused the request with HTTP {0}")]
    Refused(u16),
    #[error("orchestrator unreachable after retries: {0}")]
    GaveUp(String),
}

/// One failed attempt: `Retry` may succeed later (after the server's `Retry-After`, if it
/// sent one), `Refused` will not.
#[derive(Debug)]
enum Attempt {
    Retry(String, Option<Duration>),
    Refused(u16),
}

/// A configured callback target.
#[derive(Clone)]
pub struct Callback {
    client: reqwest::Client,
    events_url: String,
    result_url: String,
    token: secrecy::SecretString,
    retry_budget: Duration,
}

impl Callback {
    pub fn new(cfg: &CallbackConfig, task_id: TaskId, retry_budget: Duration) -> Self {
        Callback {
            client: crate::http_client(),
            events_url: callback::events_url(&cfg.url, task_id),
            result_url: callback::result_url(&cfg.url, task_id),
            token: cfg.token.clone(),
            retry_budget,
        }
    }

    /// Sends one batch of events (contiguous sequence numbers).
    pub async fn send_events(&self, batch: &[Numbered]) -> Result<(), CallbackError> {
        let body = EventBatch {
            first_seq: batch
                .first()
                .map_or(1, |e| i64::try_from(e.0).unwrap_or(i64::MAX)),
            events: batch.iter().map(|e| e.1.clone()).collect(),
        };
        self.with_retry("events", || self.client.post(&self.events_url).json(&body))
            .await
    }

    /// Reports the final result.
    pub async fn put_result(&self, result: &TaskResult) -> Result<(), CallbackError> {
        self.with_retry("result", || self.client.put(&self.result_url).json(result))
            .await
    }

    async fn with_retry(
        &self,
        what: &'static str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(), CallbackError> {
        let policy = RetryPolicy {
            attempts: u32::MAX,
            first_backoff: FIRST_RETRY,
            max_backoff: MAX_RETRY,
            max_server_wait: MAX_RETRY,
            total_wait: Some(self.retry_budget),
        };
        let attempt = || async {
            match build().bearer_auth(self.token.expose_secret()).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => {
                    let s = r.status().as_u16();
                    if s == 429 || (500..600).contains(&s) {
                        let after = r
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
                        Err(Attempt::Retry(format!("HTTP {s}"), after))
                    } else {
                        Err(Attempt::Refused(s))
                    }
                }
                Err(e) => Err(Attempt::Retry(classify(&e), None)),
            }
        };
        let verdict = |e: &Attempt| match e {
            Attempt::Retry(_, Some(after)) => Retry::After(*after),
            Attempt::Retry(_, None) => Retry::Backoff,
            Attempt::Refused(_) => Retry::No,
        };
        policy
            .run(attempt, verdict, |e, delay| {
                tracing::debug!(what, error = ?e, delay_ms = delay.as_millis() as u64, "callback failed, retrying");
            })
            .await
            .map_err(|e| match e {
                Attempt::Refused(s) => {
                    tracing::warn!(what, status = s, "orchestrator refused callback");
                    CallbackError::Refused(s)
                }
                Attempt::Retry(last, _) => {
                    tracing::warn!(what, error = %last, "giving up on callback");
                    CallbackError::GaveUp(last)
                }
            })
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
