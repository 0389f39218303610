//! Counting requests from the API server's audit log (`env().audit()`: its ResponseComplete
//! events). A measurement owns its namespace, so "the requests its tasks caused" are the
//! namespace's requests after a mark (the log's length when the measurement began), from
//! any client: the orchestrator, kube-controller-manager's controllers (each with its own
//! identity, `--use-service-account-credentials`), the garbage collector, and the node
//! (`ao-kube-node`, the kubelet stand-in), which is reported apart.
//!
//! Left out and said so in the report: the bench's own polling as admin (the observer), and
//! `watch` requests (long-running: a watch's ResponseComplete comes when it ends, and the
//! watches of informers are not made per task).

use std::collections::BTreeMap;

use ao_kube_testenv::{AuditEvent, env};

/// The audit log's length now: events after this mark happened later.
pub fn mark() -> u64 {
    env().audit_offset()
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Who {
    Orchestrator,
    /// The minimal client that creates the Jobs (admin's `create`s).
    Client,
    /// A controller of kube-controller-manager, by its identity.
    Controller(String),
    Node,
    Other(String),
    /// The bench itself, polling as admin (not counted).
    Observer,
}

impl std::fmt::Display for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Who::Orchestrator => f.write_str("orchestrator (ServiceAccount)"),
            Who::Client => f.write_str("client"),
            Who::Controller(c) => write!(f, "controller {c}"),
            Who::Node => f.write_str("node (ao-kube-node)"),
            Who::Other(u) => write!(f, "other {u}"),
            Who::Observer => f.write_str("bench observer (admin, not counted)"),
        }
    }
}

/// Requests of one namespace after a mark, by client and `verb resource[/subresource]`.
#[derive(Debug, Default)]
pub struct Tally {
    pub by: BTreeMap<(Who, String), usize>,
    /// `watch` requests that ended in the window (not counted).
    pub watches: usize,
}

impl Tally {
    /// Everything in `ns` from audit index `from` on; `orchestrator` is the audit user of the
    /// orchestrator's ServiceAccount, `admin` the bench's own.
    pub fn of(ns: &str, from: u64, orchestrator: &str, admin: &str) -> Tally {
        let mut t = Tally::default();
        for e in env().audit_since(from) {
            if e.namespace.as_deref() != Some(ns) {
                continue;
            }
            if e.verb == "watch" {
                t.watches += 1;
                continue;
            }
            let who = classify(&e, orchestrator, admin);
            *t.by.entry((who, what(&e))).or_default() += 1;
        }
        t
    }

    /// Counted requests (everything but the observer's), optionally only of `who`.
    pub fn total(&self, pick: impl Fn(&Who) -> bool) -> usize {
        self.by
            .iter()
            .filter(|((w, _), _)| *w != Who::Observer && pick(w))
            .map(|(_, n)| n)
            .sum()
    }

    /// The table, per task (`n` tasks).
    pub fn render(&self, n: usize) -> String {
        let mut out = String::new();
        for ((who, what), count) in &self.by {
            out.push_str(&format!(
                "    {:<44} {:<28} {:>6} ({:.2}/task)\n",
                who.to_string(),
                what,
                count,
                *count as f64 / n as f64
            ));
        }
        out.push_str(&format!(
            "    (watch requests ended in the window, not counted: {})\n",
            self.watches
        ));
        out
    }
}

fn what(e: &AuditEvent) -> String {
    let res = e.resource.as_deref().unwrap_or("-");
    match e.subresource.as_deref() {
        Some(s) if !s.is_empty() => format!("{} {res}/{s}", e.verb),
        _ => format!("{} {res}", e.verb),
    }
}

fn classify(e: &AuditEvent, orchestrator: &str, admin: &str) -> Who {
    let u = e.user.as_str();
    if u == orchestrator {
        Who::Orchestrator
    } else if u == admin {
        if e.verb == "create" {
            Who::Client
        } else {
            Who::Observer
        }
    } else if u == "ao-kube-node" {
        Who::Node
    } else if let Some(sa) = u.strip_prefix("system:serviceaccount:kube-system:") {
        Who::Controller(sa.to_owned())
    } else if u.starts_with("system:kube-controller-manager") {
        Who::Controller(u.to_owned())
    } else {
        Who::Other(u.to_owned())
    }
}

/// The audit user that created namespace `ns` after mark `from` (the env's admin credential,
/// which the bench also uses to observe).
pub fn admin_user(ns: &str, from: u64) -> String {
    env()
        .audit_since(from)
        .into_iter()
        .find(|e| {
            e.verb == "create"
                && e.resource.as_deref() == Some("namespaces")
                && e.name.as_deref() == Some(ns)
        })
        .map(|e| e.user)
        .unwrap_or_else(|| panic!("no create of namespace {ns} in the audit log"))
}

/// Pod creates (`create pods`, no subresource) in `ns` by `user` after `from`: their count and
/// the rate between the first and the last, from the audit timestamps.
pub fn pod_create_rate(ns: &str, user: &str, from: u64) -> (usize, f64) {
    let times: Vec<chrono::DateTime<chrono::Utc>> = env()
        .audit_since(from)
        .iter()
        .filter(|e| {
            e.namespace.as_deref() == Some(ns)
                && e.user == user
                && e.verb == "create"
                && e.resource.as_deref() == Some("pods")
                && e.subresource.as_deref().is_none_or(str::is_empty)
                && e.code < 300
        })
        .map(|e| {
            chrono::DateTime::parse_from_rfc3339(&e.time)
                .unwrap_or_else(|err| panic!("audit time {:?}: {err}", e.time))
                .to_utc()
        })
        .collect();
    let n = times.len();
    let (Some(first), Some(last)) = (times.iter().min(), times.iter().max()) else {
        return (0, 0.0);
    };
    let secs = (*last - *first).num_microseconds().unwrap_or(0) as f64 / 1e6;
    let rate = if n > 1 && secs > 0.0 {
        (n - 1) as f64 / secs
    } else {
        0.0
    };
    (n, rate)
}
