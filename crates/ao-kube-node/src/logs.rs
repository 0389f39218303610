//! Container logs: each container's stdout and stderr are copied, line by line and with a
//! timestamp, into one file (`<ts> <stream> <F|P> <text>`, as CRI's format: `P` marks a last
//! line without its newline). [`Reader`] renders them as `pods/log` does (`tailLines`,
//! `sinceSeconds`, `timestamps`, `limitBytes`) and follows a running container until it exits.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use k8s_openapi::jiff::Timestamp;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader};
use tokio::sync::{Mutex, watch};

/// The log files of the containers this node has started, by (namespace, pod, container).
#[derive(Default)]
pub(crate) struct Registry {
    files: parking_lot::Mutex<HashMap<(String, String, String), Arc<LogFile>>>,
    /// Why a container that has no log yet is waiting (its waiting reason).
    waiting: parking_lot::Mutex<HashMap<(String, String, String), String>>,
}

/// One container's log file and a signal that moves on each write (closed when it exits).
pub(crate) struct LogFile {
    pub path: PathBuf,
    pub written: watch::Receiver<u64>,
}

impl Registry {
    pub(crate) fn insert(&self, ns: &str, pod: &str, container: &str, file: Arc<LogFile>) {
        self.files
            .lock()
            .insert((ns.into(), pod.into(), container.into()), file);
    }

    pub(crate) fn get(&self, ns: &str, pod: &str, container: &str) -> Option<Arc<LogFile>> {
        self.files
            .lock()
            .get(&(ns.into(), pod.into(), container.into()))
            .cloned()
    }

    /// Records a container's waiting reason, for a log request that comes too early.
    pub(crate) fn set_waiting(&self, ns: &str, pod: &str, container: &str, reason: &str) {
        self.waiting
            .lock()
            .insert((ns.into(), pod.into(), container.into()), reason.into());
    }

    /// The kubelet's answer to a log request for a container that has not started.
    pub(crate) fn not_started(&self, ns: &str, pod: &str, container: &str) -> String {
        let key = (ns.to_owned(), pod.to_owned(), container.to_owned());
        let reason = self
            .waiting
            .lock()
            .get(&key)
            .cloned()
            .unwrap_or_else(|| "ContainerCreating".into());
        let why = match reason.as_str() {
            "ErrImagePull" | "ImagePullBackOff" => "trying and failing to pull image",
            other => other,
        };
        format!("container \"{container}\" in pod \"{pod}\" is waiting to start: {why}")
    }

    /// Forgets a pod's logs when it is deleted (a new pod of the same name starts afresh).
    pub(crate) fn remove_pod(&self, ns: &str, pod: &str) {
        self.files
            .lock()
            .retain(|(n, p, _), _| !(n == ns && p == pod));
        self.waiting
            .lock()
            .retain(|(n, p, _), _| !(n == ns && p == pod));
    }
}

/// The writing side of one container's log; dropped when both streams have ended.
pub(crate) struct LogWriter {
    file: Mutex<tokio::fs::File>,
    written: watch::Sender<u64>,
}

impl LogWriter {
    /// Creates (truncates) the log file at `path`.
    pub(crate) async fn create(path: PathBuf) -> std::io::Result<(Arc<LogWriter>, Arc<LogFile>)> {
        let file = tokio::fs::File::create(&path).await?;
        let (tx, rx) = watch::channel(0);
        let writer = Arc::new(LogWriter {
            file: Mutex::new(file),
            written: tx,
        });
        Ok((writer, Arc::new(LogFile { path, written: rx })))
    }

    async fn write(&self, stream: &str, line: &[u8]) -> std::io::Result<()> {
        let (text, full) = match line.strip_suffix(b"\n") {
            Some(t) => (t, 'F'),
            None => (line, 'P'),
        };
        let mut record = format!("{} {stream} {full} ", Timestamp::now()).into_bytes();
        record.extend_from_slice(text);
        record.push(b'\n');
        let mut file = self.file.lock().await;
        file.write_all(&record).await?;
        file.flush().await?;
        self.written.send_modify(|n| *n += record.len() as u64);
        Ok(())
    }
}

/// Copies `from` into the log, line by line, until it ends.
pub(crate) async fn pump(from: impl AsyncRead + Unpin, stream: &'static str, to: Arc<LogWriter>) {
    let mut from = BufReader::new(from);
    let mut line = Vec::new();
    loop {
        line.clear();
        match from.read_until(b'\n', &mut line).await {
            Ok(0) => return,
            Ok(_) => {
                if let Err(error) = to.write(stream, &line).await {
                    tracing::warn!(error = %error, "writing a container log");
                    return;
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, "reading container output");
                return;
            }
        }
    }
}

/// The kubelet's `FallbackToLogsOnError` message: the last 80 lines of the log, at most the
/// last 2048 bytes of them.
pub(crate) async fn tail_message(path: &std::path::Path) -> String {
    const LINES: usize = 80;
    const BYTES: usize = 2048;
    let Ok(raw) = tokio::fs::read(path).await else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&raw);
    let records: Vec<Record<'_>> = text.lines().filter_map(Record::parse).collect();
    let mut out = Vec::new();
    for r in &records[records.len().saturating_sub(LINES)..] {
        r.write(&mut out, false);
    }
    let out = String::from_utf8_lossy(&out).into_owned();
    let mut cut = out.len().saturating_sub(BYTES);
    while !out.is_char_boundary(cut) {
        cut += 1;
    }
    out[cut..].to_owned()
}

/// What a log request asks for.
#[derive(Clone, Debug, Default)]
pub(crate) struct Query {
    pub follow: bool,
    pub tail_lines: Option<usize>,
    pub timestamps: bool,
    pub since: Option<Timestamp>,
    pub limit_bytes: Option<usize>,
}

/// Renders one log file for a request, chunk by chunk.
pub(crate) struct Reader {
    file: Arc<LogFile>,
    written: watch::Receiver<u64>,
    query: Query,
    offset: u64,
    sent: usize,
    started: bool,
    done: bool,
}

impl Reader {
    pub(crate) fn new(file: Arc<LogFile>, query: Query) -> Self {
        let written = file.written.clone();
        Reader {
            file,
            written,
            query,
            offset: 0,
            sent: 0,
            started: false,
            done: false,
        }
    }

    /// The next piece of output; `None` at the end (not following, the container exited, or
    /// `limitBytes` reached).
    pub(crate) async fn next(&mut self) -> std::io::Result<Option<Bytes>> {
        loop {
            if self.done {
                return Ok(None);
            }
            // Mark what we have seen before reading, so a write after the read wakes us.
            self.written.borrow_and_update();
            let chunk = self.read_new().await?;
            let first = !self.started;
            self.started = true;
            let out = self.render(&chunk, first);
            if !self.query.follow {
                self.done = true;
            }
            if !out.is_empty() {
                return Ok(Some(out));
            }
            if self.query.follow && self.written.changed().await.is_err() {
                // The container exited: render what is left once more, then stop.
                let rest = self.read_new().await?;
                self.done = true;
                let out = self.render(&rest, false);
                return Ok((!out.is_empty()).then_some(out));
            }
        }
    }

    /// Complete records written since the last read.
    async fn read_new(&mut self) -> std::io::Result<Vec<u8>> {
        let mut f = tokio::fs::File::open(&self.file.path).await?;
        f.seek(std::io::SeekFrom::Start(self.offset)).await?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).await?;
        let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        buf.truncate(complete);
        self.offset += complete as u64;
        Ok(buf)
    }

    fn render(&mut self, chunk: &[u8], first: bool) -> Bytes {
        let text = String::from_utf8_lossy(chunk);
        let mut records: Vec<Record<'_>> = text.lines().filter_map(Record::parse).collect();
        if let Some(since) = self.query.since {
            records.retain(|r| r.time >= since);
        }
        if first && let Some(n) = self.query.tail_lines {
            let skip = records.len().saturating_sub(n);
            records.drain(..skip);
        }
        let mut out = Vec::new();
        for r in records {
            r.write(&mut out, self.query.timestamps);
        }
        if let Some(limit) = self.query.limit_bytes {
            out.truncate(limit.saturating_sub(self.sent));
            if self.sent + out.len() >= limit {
                self.done = true;
            }
        }
        self.sent += out.len();
        Bytes::from(out)
    }
}

/// One parsed log line.
#[derive(Debug, PartialEq)]
pub(crate) struct Record<'a> {
    pub time: Timestamp,
    pub text: &'a str,
    pub full: bool,
}

impl<'a> Record<'a> {
    pub(crate) fn parse(line: &'a str) -> Option<Self> {
        let mut parts = line.splitn(4, ' ');
        let time = parts.next()?.parse().ok()?;
        let _stream = parts.next()?;
        let full = parts.next()? == "F";
        Some(Record {
            time,
            text: parts.next().unwrap_or(""),
            full,
        })
    }

    fn write(&self, out: &mut Vec<u8>, timestamps: bool) {
        if timestamps {
            out.extend_from_slice(format!("{} ", self.time).as_bytes());
        }
        out.extend_from_slice(self.text.as_bytes());
        if self.full {
            out.push(b'\n');
        }
    }
}

#[cfg(test)]
mod tests;
