//! Reads an API server's audit log (any of them: the environment's main server, or an extra
//! one started with other flags, which keeps its own log), with the fields the watch tests
//! judge by: the request URI (`resourceVersion=` of a watch), the stage (a watch is logged
//! when it starts, `ResponseStarted`, and when it ends), the status code and the time.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// One audit event (any stage but `RequestReceived`, which the policy omits).
#[derive(Debug, Clone)]
pub struct Ev {
    pub audit_id: String,
    pub stage: String,
    pub verb: String,
    pub user: String,
    pub code: u16,
    pub uri: String,
    pub namespace: Option<String>,
    pub resource: Option<String>,
    pub subresource: Option<String>,
    /// When the server received the request, in microseconds since the epoch.
    pub received_us: i64,
}

impl Ev {
    /// The value of a query parameter of the request URI.
    pub fn param(&self, key: &str) -> Option<&str> {
        let (_, query) = self.uri.split_once('?')?;
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// A request of `user` on the pods collection (or a pod) of `ns`, without subresource.
    pub fn on_pods_by(&self, user: &str, ns: &str) -> bool {
        self.user == user
            && self.namespace.as_deref() == Some(ns)
            && self.resource.as_deref() == Some("pods")
            && self.subresource.is_none()
    }

    pub fn short(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.stage, self.verb, self.code, self.user, self.uri
        )
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    #[serde(rename = "auditID")]
    audit_id: String,
    stage: String,
    verb: String,
    #[serde(default, rename = "requestURI")]
    request_uri: String,
    user: RawUser,
    #[serde(default)]
    object_ref: Option<RawRef>,
    #[serde(default)]
    response_status: Option<RawStatus>,
    #[serde(default)]
    request_received_timestamp: String,
}

#[derive(Deserialize)]
struct RawUser {
    #[serde(default)]
    username: String,
}

#[derive(Deserialize)]
struct RawRef {
    namespace: Option<String>,
    resource: Option<String>,
    subresource: Option<String>,
}

#[derive(Deserialize)]
struct RawStatus {
    #[serde(default)]
    code: u16,
}

/// An audit log from a byte offset on: a test reads only what was logged after its mark.
#[derive(Debug, Clone)]
pub struct Log {
    pub path: PathBuf,
    from: u64,
}

impl Log {
    /// The log at `path` from now on.
    pub fn from_now(path: &Path) -> Log {
        let from = std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("cannot read the audit log {}: {e}", path.display()))
            .len();
        Log {
            path: path.to_owned(),
            from,
        }
    }

    /// The same log from now on.
    pub fn mark(&self) -> Log {
        Log::from_now(&self.path)
    }

    /// Every complete event logged since the mark (a line still being written is left out).
    pub fn events(&self) -> Vec<Ev> {
        let mut f = std::fs::File::open(&self.path)
            .unwrap_or_else(|e| panic!("cannot open the audit log {}: {e}", self.path.display()));
        f.seek(SeekFrom::Start(self.from))
            .expect("seek in the audit log");
        let mut text = String::new();
        f.read_to_string(&mut text).expect("read the audit log");
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(parse)
            .collect()
    }

    /// Polls the log (every 100 ms, at most `secs`) until `found` picks something out of it;
    /// panics with `what`, the log's tail and `context()` otherwise.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        secs: u64,
        found: impl Fn(&[Ev]) -> Option<T>,
    ) -> T {
        self.wait_or(what, secs, found, String::new).await
    }

    /// [`Log::wait_for`], with more to say when it times out (the orchestrator's log).
    pub async fn wait_or<T>(
        &self,
        what: &str,
        secs: u64,
        found: impl Fn(&[Ev]) -> Option<T>,
        context: impl Fn() -> String,
    ) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let evs = self.events();
            if let Some(t) = found(&evs) {
                return t;
            }
            if Instant::now() > deadline {
                let tail: Vec<String> = evs.iter().rev().take(30).map(Ev::short).collect();
                panic!(
                    "{what}: not in the audit log {} within {secs} s; its last events (newest first):\n{}\n{}",
                    self.path.display(),
                    tail.join("\n"),
                    context()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn parse(line: &str) -> Ev {
    let r: Raw = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("audit line does not parse ({e}): {line}"));
    let o = r.object_ref;
    Ev {
        audit_id: r.audit_id,
        stage: r.stage,
        verb: r.verb,
        user: r.user.username,
        code: r.response_status.map_or(0, |s| s.code),
        uri: r.request_uri,
        namespace: o.as_ref().and_then(|o| o.namespace.clone()),
        resource: o.as_ref().and_then(|o| o.resource.clone()),
        subresource: o.as_ref().and_then(|o| o.subresource.clone()),
        received_us: chrono::DateTime::parse_from_rfc3339(&r.request_received_timestamp)
            .map_or(0, |t| t.timestamp_micros()),
    }
}
