//! Reads an API server's audit log (any of them: the environment's main server, or an extra
//! one started with other flags, which keeps its own log), with the fields the watch tests
//! judge by: the request URI (`resourceVersion=` of a watch), the stage (a watch is logged
//! when it starts, `ResponseStarted`, and when it ends), the status code and the time.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    /// The object's name (for a create, once the server has read the body).
    pub name: Option<String>,
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

    /// Every complete event logged since the mark, at every stage (a line still being
    /// written is left out).
    pub fn events(&self) -> Vec<Ev> {
        ao_kube_testenv::read_log(&self.path, self.from, true)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(Ev::from)
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

impl From<ao_kube_testenv::AuditEvent> for Ev {
    fn from(e: ao_kube_testenv::AuditEvent) -> Ev {
        Ev {
            received_us: chrono::DateTime::parse_from_rfc3339(&e.time)
                .map_or(0, |t| t.timestamp_micros()),
            audit_id: e.audit_id,
            stage: e.stage,
            verb: e.verb,
            user: e.user,
            code: e.code,
            uri: e.uri,
            namespace: e.namespace,
            resource: e.resource,
            subresource: e.subresource,
            name: e.name,
        }
    }
}
