//! Reading a worker's output file as it is written, into core's output pipeline.
//!
//! The supervisor writes the worker's output to `output.log`; this reads what is new each
//! time the task folder's watch fires (see [`crate::watch`]), so a line reaches the store as
//! soon as it is written. The file stays the source of truth: after a restart it is read again
//! from the start and core skips what the store already has.

use std::path::Path;
use std::time::Duration;

use ao_core::output::WorkerOutput;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::watch::Subscription;

/// Without a watch (inotify unavailable), how often to look for new output; with one, a
/// safety net for events a file system does not deliver.
const POLL: Duration = Duration::from_millis(100);
const SAFETY_POLL: Duration = Duration::from_secs(2);
/// Bytes read per store hand-off at most.
const CHUNK: usize = 64 * 1024;

/// Hand every byte of `path` to `output` until `done` turns true, then what is left. The
/// caller ends `output` (storing an incomplete last line) once this returns.
pub(crate) async fn tail(
    path: &Path,
    output: &WorkerOutput,
    changes: Option<Subscription>,
    mut done: watch::Receiver<bool>,
) {
    let mut file: Option<tokio::fs::File> = None;
    let mut buf = vec![0u8; CHUNK];
    let pause = if changes.is_some() { SAFETY_POLL } else { POLL };
    loop {
        let finished = *done.borrow_and_update();
        if !drain(path, &mut file, &mut buf, output).await || finished {
            return;
        }
        let changed = async {
            match &changes {
                Some(c) => c.changed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep(pause) => {}
            _ = done.changed() => {}
        }
    }
}

/// Read to the end of the file (opening it once it exists). False when the output is closed.
async fn drain(
    path: &Path,
    file: &mut Option<tokio::fs::File>,
    buf: &mut [u8],
    output: &WorkerOutput,
) -> bool {
    if file.is_none() {
        // Not through a link a worker put in its place (see `crate::nofollow`).
        *file = crate::nofollow::open_read(path)
            .ok()
            .map(tokio::fs::File::from_std);
    }
    let Some(f) = file.as_mut() else {
        return true; // not written yet
    };
    loop {
        match f.read(buf).await {
            Ok(0) => return true,
            Ok(n) => {
                if output.write(buf[..n].to_vec()).await.is_err() {
                    return false;
                }
            }
            Err(e) => {
                tracing::warn!(task_id = %output.task_id(), error = %e, "reading the worker output failed");
                return true;
            }
        }
    }
}
