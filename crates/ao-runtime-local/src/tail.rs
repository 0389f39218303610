//! Following a worker's output file into the store, line by line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ao_core::store::TaskStore;
use ao_core::task::TaskId;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;
use tracing::warn;

/// Longest line stored as one; longer output is cut into pieces of this size.
const MAX_LINE: usize = 64 * 1024;
/// How often to look for new output while the worker runs.
const POLL: Duration = Duration::from_millis(100);
/// Lines per store write.
const BATCH: usize = 500;

/// Store every complete line of `path` beyond those already stored, until `done` turns true;
/// then store the rest, including a last line without a newline.
pub(crate) async fn tail(
    store: Arc<dyn TaskStore>,
    id: TaskId,
    path: PathBuf,
    mut done: watch::Receiver<bool>,
) {
    // Resume after a restart: skip lines the store already has.
    let mut skip = match store.log_count(id).await {
        Ok(n) => n,
        Err(e) => {
            warn!(task_id = %id, error = %e, "cannot read the stored line count; output may repeat");
            0
        }
    };
    let mut offset = 0u64;
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let finished = *done.borrow_and_update();
        let mut chunk = Vec::new();
        if let Ok(mut f) = tokio::fs::File::open(&path).await
            && f.seek(std::io::SeekFrom::Start(offset)).await.is_ok()
            && let Ok(n) = f.read_to_end(&mut chunk).await
        {
            offset += n as u64;
        }
        pending.extend_from_slice(&chunk);
        let mut lines = split_lines(&mut pending, finished);
        let drop = usize::try_from(skip).unwrap_or(usize::MAX).min(lines.len());
        lines.drain(..drop);
        skip -= drop as i64;
        for batch in lines.chunks(BATCH) {
            if let Err(e) = store.append_logs(id, batch).await {
                warn!(task_id = %id, error = %e, lines = batch.len(), "storing worker output failed");
            }
        }
        if finished {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = done.changed() => {}
        }
    }
}

/// Take the complete lines out of `buf`; with `all`, also the incomplete last one.
fn split_lines(buf: &mut Vec<u8>, all: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 0..buf.len() {
        if buf[i] == b'\n' {
            push_line(&mut out, &buf[start..i]);
            start = i + 1;
        } else if i + 1 - start >= MAX_LINE {
            push_line(&mut out, &buf[start..=i]);
            start = i + 1;
        }
    }
    if all && start < buf.len() {
        push_line(&mut out, &buf[start..]);
        start = buf.len();
    }
    buf.drain(..start);
    out
}

fn push_line(out: &mut Vec<String>, bytes: &[u8]) {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    out.push(String::from_utf8_lossy(bytes).into_owned());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_complete_lines_and_keeps_the_rest() {
        let mut buf = b"a\nbb\r\nccc".to_vec();
        assert_eq!(split_lines(&mut buf, false), vec!["a", "bb"]);
        assert_eq!(buf, b"ccc");
        assert_eq!(split_lines(&mut buf, true), vec!["ccc"]);
        assert!(buf.is_empty());
    }

    #[test]
    fn cuts_overlong_lines() {
        let mut buf = vec![b'x'; MAX_LINE * 2 + 5];
        let lines = split_lines(&mut buf, false);
        assert_eq!(lines.len(), 2);
        assert_eq!(buf.len(), 5);
    }
}
