//! Reading a worker pod's log into core's output pipeline ([`ao_core::output`]): one
//! `pods/log?follow=true` stream per pod, its bytes handed to the task's [`WorkerOutput`] as
//! they arrive. Core cuts them into lines, stores them in batches (up to `log_batch_lines`)
//! and reports the pod's end only once they are stored.
//!
//! Resumption (after an orchestrator restart or a broken stream) counts lines: the stream is
//! read again from the start ([`WorkerOutput::rewind`]) and core skips the lines the store
//! already has, so no line is stored twice. (`sinceTime` has one-second precision and would
//! duplicate or lose lines.) The count can drift only if the kubelet rotates the container
//! log, which worker pods, with their bounded output, do not reach at default settings.

use ao_core::retry;
use std::time::Duration;

use ao_core::output::{OutputConfig, OutputPipeline, WorkerOutput};
use ao_core::task::TaskId;
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use futures::AsyncReadExt;
use kube::api::LogParams;
use parking_lot::Mutex;
use tracing::{debug, warn};

use crate::error::{KubeError, is_transient};
use crate::pod::CONTAINER;
use crate::runtime::Inner;

/// Failed opens (or broken streams) of one pod's log, after the first try, before the
/// runtime stops asking for it. The budget covers the pod's whole life, not one follower.
pub(crate) const LOG_RETRIES: usize = 5;
/// The pause after the first failure; it doubles after each (0.5, 1, 2, 4, 8 s).
const FIRST_PAUSE: Duration = Duration::from_millis(500);
/// Bytes read from the stream per hand-off at most.
const CHUNK: usize = 64 * 1024;

/// How often one pod's log may still be asked for: exponential backoff (`backon`) with a
/// fixed number of retries for the pod's whole life, shared by every log follower of that
/// pod (the follower restarted while the pod runs, and the last drain once it ended). So a
/// log endpoint that cannot be reached (the API server answers 5xx, say the node has no
/// kubelet) costs at most `1 + LOG_RETRIES` `pods/log` requests per pod, however long it
/// runs; the task still ends through the watch and the callback. A stream that delivered
/// output and then broke starts the budget afresh: that is progress, not a loop.
pub(crate) struct LogRetry {
    backoff: Mutex<Option<ExponentialBackoff>>,
}

impl LogRetry {
    pub(crate) fn new() -> Self {
        LogRetry {
            backoff: Mutex::new(Some(Self::builder().build())),
        }
    }

    fn builder() -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(FIRST_PAUSE)
            .with_factor(2.0)
            .with_max_delay(FIRST_PAUSE * (1 << (LOG_RETRIES - 1)))
            .with_max_times(LOG_RETRIES)
    }

    /// The pause before the next try, or `None` once the budget is spent (for good).
    fn next_pause(&self) -> Option<Duration> {
        let mut b = self.backoff.lock();
        let pause = b.as_mut().and_then(Iterator::next);
        if pause.is_none() {
            *b = None;
        }
        pause
    }

    /// True once the pod's log is given up on: no follower should ask for it again.
    pub(crate) fn exhausted(&self) -> bool {
        self.backoff.lock().is_none()
    }

    fn reset(&self) {
        *self.backoff.lock() = Some(Self::builder().build());
    }
}

/// Start copying a task's output into the store (see [`ao_core::output`]).
pub(crate) fn open(inner: &Inner, task_id: TaskId) -> WorkerOutput {
    let cfg = OutputConfig {
        batch_lines: inner.cfg.log_batch_lines.max(1),
        ..OutputConfig::default()
    };
    OutputPipeline::new(inner.store.clone(), inner.events.clone(), cfg).open(task_id)
}

/// [`follow_with`] with a budget of its own (a one-off drain of a finished pod's log).
pub(crate) async fn follow(
    inner: &Inner,
    task_id: TaskId,
    pod: &str,
    output: &WorkerOutput,
) -> Result<(), KubeError> {
    follow_with(inner, task_id, pod, output, &LogRetry::new()).await
}

/// Follow the pod's log until the container ends (the stream closes), handing it to `output`.
/// Failures spend `retry`'s budget; once it is spent this returns an error without asking.
pub(crate) async fn follow_with(
    inner: &Inner,
    task_id: TaskId,
    pod: &str,
    output: &WorkerOutput,
    retry: &LogRetry,
) -> Result<(), KubeError> {
    let gave_up = |e: String| {
        warn!(task_id = %task_id, error = %e, retries = LOG_RETRIES, "giving up on the worker log");
        KubeError::LogStream(format!("gave up after {LOG_RETRIES} retries: {e}"))
    };
    loop {
        if retry.exhausted() {
            return Err(KubeError::LogStream(
                "the worker log was given up on".into(),
            ));
        }
        let lp = LogParams {
            follow: true,
            container: Some(CONTAINER.into()),
            ..Default::default()
        };
        let reader = match inner.pods.log_stream(pod, &lp).await {
            Ok(r) => r,
            Err(e) if is_transient(&e) => {
                let Some(pause) = retry.next_pause() else {
                    return Err(gave_up(e.to_string()));
                };
                // Throttled: never sooner than the server asked (core's policy).
                let pause = match crate::error::throttle_floor(&e) {
                    Some(d) => pause.max(retry::server_wait(d, MAX_THROTTLE_WAIT)),
                    None => pause,
                };
                debug!(task_id = %task_id, error = %e, pause_ms = pause.as_millis() as u64, "log stream failed to open; retrying");
                tokio::time::sleep(pause).await;
                continue;
            }
            Err(e) => {
                // Not worth retrying now, but it counts: a restarted follower asks again.
                let _ = retry.next_pause();
                return Err(e.into());
            }
        };
        // Every stream shows the log from its start; core skips what is already stored.
        if output.rewind().await.is_err() {
            return Ok(()); // the output was ended meanwhile: nothing left to store
        }
        let mut reader = Box::pin(reader);
        let mut buf = vec![0u8; CHUNK];
        let mut delivered = false;
        let broken = loop {
            match reader.read(&mut buf).await {
                Ok(0) => break None,
                Ok(n) => {
                    delivered = true;
                    if output.write(buf[..n].to_vec()).await.is_err() {
                        return Ok(());
                    }
                }
                Err(e) => break Some(e),
            }
        };
        let Some(e) = broken else { return Ok(()) };
        if delivered {
            retry.reset();
        }
        let Some(pause) = retry.next_pause() else {
            return Err(gave_up(e.to_string()));
        };
        warn!(task_id = %task_id, error = %e, "log stream broke; resuming");
        tokio::time::sleep(pause).await;
    }
}

/// The longest a throttled log request waits for the server's date.
const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    /// The budget: five doubling pauses from 0.5 s, then nothing, for good.
    #[test]
    fn the_log_retry_budget_doubles_and_runs_out() {
        let r = LogRetry::new();
        let pauses: Vec<_> = std::iter::from_fn(|| r.next_pause()).collect();
        let secs: Vec<f64> = pauses.iter().map(Duration::as_secs_f64).collect();
        assert_eq!(secs, [0.5, 1.0, 2.0, 4.0, 8.0]);
        assert!(r.exhausted());
        assert_eq!(r.next_pause(), None, "spent for good");
        r.reset();
        assert!(!r.exhausted());
        assert_eq!(r.next_pause(), Some(FIRST_PAUSE));
    }
}
