//! The simulated API server's object store: pods and secrets, one monotonically increasing
//! resourceVersion shared by every object, and a bounded history of pod changes that watches
//! replay from (a resume older than the history gets `410 Gone`, like etcd compaction).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Secret};
use tokio::sync::{broadcast, watch};

use crate::kubelet::Behaviour;
use crate::logs::LogBuf;

/// What happened to a pod, as a watch reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One pod change, at the resourceVersion it produced.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub kind: ChangeKind,
    pub namespace: String,
    pub pod: Arc<Pod>,
}

/// A pod plus what the simulated node knows about it.
pub struct PodRec {
    pub pod: Pod,
    pub logs: Arc<LogBuf>,
    /// Set when the pod is deleted: the grace period the kubelet must honour.
    pub kill: watch::Sender<Option<i64>>,
}

/// Everything the simulated API server stores.
pub struct State {
    pub rv: u64,
    pub pods: BTreeMap<(String, String), PodRec>,
    pub secrets: BTreeMap<(String, String), Secret>,
    pub history: VecDeque<Arc<Change>>,
    pub history_limit: usize,
    /// A watch resuming from a version below this gets `410 Gone`.
    pub oldest_resumable: u64,
    /// Per-pod-name behaviours set by tests before the pod exists.
    pub behaviours: HashMap<String, Behaviour>,
    pub events: broadcast::Sender<Arc<Change>>,
    pub uid_seq: u64,
    /// Successful creates per pod (namespace, name), deleted pods included: a count above one
    /// is a pod created twice.
    pub created: BTreeMap<(String, String), u32>,
}

impl State {
    pub fn new(history_limit: usize, broadcast_capacity: usize) -> Self {
        State {
            rv: 1,
            pods: BTreeMap::new(),
            secrets: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit,
            oldest_resumable: 0,
            behaviours: HashMap::new(),
            events: broadcast::channel(broadcast_capacity).0,
            uid_seq: 0,
            created: BTreeMap::new(),
        }
    }

    /// A fresh resourceVersion for any kind of object.
    pub fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    pub fn next_uid(&mut self) -> String {
        self.uid_seq += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.uid_seq)
    }

    /// Stamp `pod` with a new resourceVersion, record the change and tell the watches.
    /// Returns the stored pod.
    pub fn commit(&mut self, namespace: &str, mut pod: Pod, kind: ChangeKind) -> Pod {
        let rv = self.next_rv();
        pod.metadata.resource_version = Some(rv.to_string());
        let change = Arc::new(Change {
            rv,
            kind,
            namespace: namespace.to_string(),
            pod: Arc::new(pod.clone()),
        });
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.oldest_resumable = self.oldest_resumable.max(old.rv);
            }
        }
        // No receivers is fine.
        let _ = self.events.send(change);
        pod
    }

    /// Drop the whole history, as a compaction would: every resume from an older version
    /// now gets `410 Gone`.
    pub fn compact(&mut self) {
        self.history.clear();
        self.oldest_resumable = self.rv;
    }
}
