//! A container's output as the simulated kubelet keeps it, and the `pods/{name}/log` stream:
//! everything written so far, then (with `follow=true`) new output until the container ends.

use std::sync::Mutex;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::watch;

/// One container's log: bytes written so far, and whether the container has ended.
#[derive(Debug)]
pub struct LogBuf {
    data: Mutex<Vec<u8>>,
    /// (bytes written, ended), bumped on every write so followers wake up.
    progress: watch::Sender<(usize, bool)>,
}

impl Default for LogBuf {
    fn default() -> Self {
        LogBuf {
            data: Mutex::new(Vec::new()),
            progress: watch::channel((0, false)).0,
        }
    }
}

impl LogBuf {
    /// Append one line (a newline is added).
    pub fn line(&self, line: &str) {
        let mut d = self.data.lock().expect("log lock");
        d.extend_from_slice(line.as_bytes());
        d.push(b'\n');
        let len = d.len();
        drop(d);
        self.progress.send_modify(|p| p.0 = len);
    }

    /// The container ended: followers drain and stop.
    pub fn close(&self) {
        self.progress.send_modify(|p| p.1 = true);
    }

    /// Everything written so far.
    pub fn snapshot(&self) -> Vec<u8> {
        self.data.lock().expect("log lock").clone()
    }

    /// The last `max_lines` lines, at most `max_bytes` (for `FallbackToLogsOnError`).
    pub fn tail(&self, max_lines: usize, max_bytes: usize) -> String {
        let d = self.snapshot();
        let text = String::from_utf8_lossy(&d);
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(max_lines);
        let mut out = lines[start..].join("\n");
        if out.len() > max_bytes {
            let mut cut = out.len() - max_bytes;
            while !out.is_char_boundary(cut) {
                cut += 1;
            }
            out = out[cut..].to_string();
        }
        out
    }

    /// The log as a byte stream; with `follow`, it waits for new output until the container ends.
    pub fn stream(
        self: std::sync::Arc<Self>,
        follow: bool,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let rx = self.progress.subscribe();
        futures::stream::unfold(
            (self, rx, 0usize, false),
            move |(buf, mut rx, offset, done)| async move {
                if done {
                    return None;
                }
                loop {
                    let (len, closed) = *rx.borrow_and_update();
                    if len > offset {
                        let chunk = Bytes::copy_from_slice(
                            &buf.data.lock().expect("log lock")[offset..len],
                        );
                        let next_done = !follow;
                        return Some((Ok(chunk), (buf, rx, len, next_done)));
                    }
                    if closed || !follow {
                        return None;
                    }
                    if rx.changed().await.is_err() {
                        return None;
                    }
                }
            },
        )
    }
}
