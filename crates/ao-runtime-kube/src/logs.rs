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

use std::time::Duration;

use ao_core::output::{OutputConfig, OutputPipeline, WorkerOutput};
use ao_core::task::TaskId;
use futures::AsyncReadExt;
use kube::api::LogParams;
use tracing::{debug, warn};

use crate::error::{KubeError, is_transient};
use crate::pod::CONTAINER;
use crate::runtime::Inner;

/// Reconnections of one follower after a broken stream before it gives up.
const MAX_RECONNECTS: u32 = 5;
/// Bytes read from the stream per hand-off at most.
const CHUNK: usize = 64 * 1024;

/// Start copying a task's output into the store (see [`ao_core::output`]).
pub(crate) fn open(inner: &Inner, task_id: TaskId) -> WorkerOutput {
    let cfg = OutputConfig {
        batch_lines: inner.cfg.log_batch_lines.max(1),
        ..OutputConfig::default()
    };
    OutputPipeline::new(inner.store.clone(), inner.events.clone(), cfg).open(task_id)
}

/// Follow the pod's log until the container ends (the stream closes), handing it to `output`.
pub(crate) async fn follow(
    inner: &Inner,
    task_id: TaskId,
    pod: &str,
    output: &WorkerOutput,
) -> Result<(), KubeError> {
    let mut reconnects = 0;
    loop {
        let lp = LogParams {
            follow: true,
            container: Some(CONTAINER.into()),
            ..Default::default()
        };
        let reader = match inner.pods.log_stream(pod, &lp).await {
            Ok(r) => r,
            Err(e) if is_transient(&e) && reconnects < MAX_RECONNECTS => {
                reconnects += 1;
                debug!(task_id = %task_id, error = %e, "log stream failed to open; retrying");
                tokio::time::sleep(Duration::from_millis(200 << reconnects)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        // Every stream shows the log from its start; core skips what is already stored.
        if output.rewind().await.is_err() {
            return Ok(()); // the output was ended meanwhile: nothing left to store
        }
        let mut reader = Box::pin(reader);
        let mut buf = vec![0u8; CHUNK];
        let broken = loop {
            match reader.read(&mut buf).await {
                Ok(0) => break None,
                Ok(n) => {
                    if output.write(buf[..n].to_vec()).await.is_err() {
                        return Ok(());
                    }
                }
                Err(e) => break Some(e),
            }
        };
        match broken {
            None => return Ok(()),
            Some(e) if reconnects < MAX_RECONNECTS => {
                reconnects += 1;
                warn!(task_id = %task_id, error = %e, "log stream broke; resuming");
                tokio::time::sleep(Duration::from_millis(200 << reconnects)).await;
            }
            Some(e) => return Err(KubeError::LogStream(e.to_string())),
        }
    }
}
