//! Following a worker pod's log into the task store: one `pods/log?follow=true` stream per
//! pod, complete lines appended in small batches (whatever has arrived, up to
//! `log_batch_lines`).
//!
//! Resumption (after an orchestrator restart or a broken stream) counts lines: the stream is
//! read again from the start and the first `store.log_count(task)` lines are skipped, so no
//! line is stored twice. (`sinceTime` has one-second precision and would duplicate or lose
//! lines.) The count can drift only if the kubelet rotates the container log, which worker
//! pods, with their bounded output, do not reach at default settings.

use std::time::Duration;

use ao_core::task::TaskId;
use futures::{AsyncBufReadExt, StreamExt};
use kube::api::LogParams;
use tracing::{debug, warn};

use crate::error::{KubeError, is_transient};
use crate::pod::CONTAINER;
use crate::runtime::Inner;

/// Reconnections of one follower after a broken stream before it gives up.
const MAX_RECONNECTS: u32 = 5;

/// Follow the pod's log until the container ends (the stream closes), storing new lines.
pub(crate) async fn follow(inner: &Inner, task_id: TaskId, pod: &str) -> Result<(), KubeError> {
    let mut stored = usize::try_from(inner.store.log_count(task_id).await?).unwrap_or(0);
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
        let lines = futures::stream::unfold(Box::pin(reader), |mut r| async move {
            let mut buf = Vec::new();
            match r.read_until(b'\n', &mut buf).await {
                Ok(0) => None,
                Ok(_) => {
                    if buf.last() == Some(&b'\n') {
                        buf.pop();
                    }
                    Some((Ok(String::from_utf8_lossy(&buf).into_owned()), r))
                }
                Err(e) => Some((Err(e), r)),
            }
        });
        let mut chunks = std::pin::pin!(lines.ready_chunks(inner.cfg.log_batch_lines.max(1)));
        let mut seen = 0usize;
        let mut broken = None;
        while let Some(chunk) = chunks.next().await {
            let mut batch = Vec::new();
            for line in chunk {
                match line {
                    Ok(l) => {
                        seen += 1;
                        if seen > stored {
                            batch.push(l);
                        }
                    }
                    Err(e) => {
                        broken = Some(e);
                        break;
                    }
                }
            }
            if !batch.is_empty() {
                inner.store.append_logs(task_id, &batch).await?;
                stored += batch.len();
            }
            if broken.is_some() {
                break;
            }
        }
        match broken {
            None => return Ok(()),
            Some(e) if reconnects < MAX_RECONNECTS => {
                reconnects += 1;
                warn!(task_id = %task_id, error = %e, stored, "log stream broke; resuming");
                tokio::time::sleep(Duration::from_millis(200 << reconnects)).await;
            }
            Some(e) => return Err(KubeError::LogStream(e.to_string())),
        }
    }
}
