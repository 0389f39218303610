//! The one pod watch of the runtime: a kube-runtime `watcher` over the label selector of
//! every pod the orchestrator creates, in the configured namespace, feeding a reflector
//! (the in-memory pod cache that `adopt` and `workers` read) and the per-task pod followers.
//!
//! The watcher lists once, then watches from the list's resourceVersion, resumes from the
//! last seen version when a stream ends (a cut connection, the server's watch timeout),
//! relists on `410 Gone` (the version was compacted away), and backs off on errors
//! (`default_backoff`: client-go's 0.8 s doubling to 30 s with jitter, reset after 2 min of
//! health). No pod is ever polled. Relists and expirations are logged at info, so that
//! operators (and the real-API-server tests) see them.

use std::sync::Arc;

use ao_core::task::TaskId;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher::{self, Event};
use tracing::{debug, info, warn};

use crate::pod::{SELECTOR, task_id_of};
use crate::runtime::Inner;

/// Keep only what the runtime reads: metadata (labels, deletion) and status. The spec holds
/// the task spec (prompt) and is the bulk of a pod object; dropping it keeps the cache small.
fn slim(pod: &mut Pod) {
    pod.spec = None;
    pod.metadata.managed_fields = None;
    pod.metadata.annotations = None;
}

pub(crate) async fn run(inner: Arc<Inner>, writer: reflector::store::Writer<Pod>) {
    let cfg = watcher::Config::default().labels(SELECTOR);
    let stream = watcher::watcher(inner.pods.clone(), cfg)
        .default_backoff()
        .modify(slim)
        .reflect(writer);
    let mut stream = std::pin::pin!(stream);
    info!(namespace = %inner.cfg.namespace, selector = SELECTOR, "watching worker pods");
    // Lists so far: the first is the initial list, every later one a relist.
    let mut lists: u64 = 0;
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(Event::Apply(pod)) => route(&inner, &pod, Change::Applied),
            // During a relist the cache keeps the old objects until the list is complete.
            Ok(Event::InitApply(pod)) => route(&inner, &pod, Change::Listed),
            Ok(Event::Delete(pod)) => route(&inner, &pod, Change::Deleted),
            Ok(Event::Init) => {
                lists += 1;
                if lists == 1 {
                    debug!("pod watch listing");
                } else {
                    info!(relists = lists - 1, "pod watch relisting");
                }
            }
            Ok(Event::InitDone) => {
                debug!(pods = inner.cache.len(), "pod watch listed");
                tokio::spawn(check_missing(inner.clone()));
            }
            Err(e) if is_gone(&e) => {
                info!(code = 410u16, error = %e, "pod watch resourceVersion expired (410 Gone); relisting")
            }
            Err(e) => warn!(error = %e, "pod watch failed; retrying with backoff"),
        }
    }
}

/// A watch from a resourceVersion older than the server still has (compacted away, or out
/// of the watch cache's window): the watcher starts over with a list.
fn is_gone(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::WatchError(s) => s.code == 410,
        watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code == 410,
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Applied,
    Listed,
    Deleted,
}

/// Hand a pod change to its task's pod follower, if the task is followed by this process.
fn route(inner: &Inner, pod: &Pod, change: Change) {
    let deleted = change == Change::Deleted;
    let Some(task_id) = task_id_of(pod) else {
        return;
    };
    let tracked = inner.tracked.lock();
    let Some(tx) = tracked.get(&task_id) else {
        return;
    };
    // The cache holds the same (newest) object; share it rather than copy it.
    let latest = if change != Change::Applied {
        Arc::new(pod.clone())
    } else {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        inner
            .cache
            .get(&ObjectRef::new(name).within(&inner.cfg.namespace))
            .unwrap_or_else(|| Arc::new(pod.clone()))
    };
    tx.send_modify(|s| {
        s.pod = Some(latest);
        s.deleted |= deleted;
    });
}

/// After a relist, pods of followed tasks that are missing were deleted while the watch was
/// down (their DELETED event is lost). Confirm with a read of that pod before declaring it gone: a pod
/// created after the list began is simply not in it yet.
async fn check_missing(inner: Arc<Inner>) {
    let candidates: Vec<(TaskId, String)> = {
        let tracked = inner.tracked.lock();
        tracked
            .iter()
            .filter(|(_, tx)| {
                let s = tx.borrow();
                s.created && !s.deleted
            })
            .map(|(id, _)| (*id, crate::pod::pod_name(*id)))
            .filter(|(_, name)| {
                inner
                    .cache
                    .get(&ObjectRef::new(name).within(&inner.cfg.namespace))
                    .is_none()
            })
            .collect()
    };
    for (task_id, name) in candidates {
        match crate::pod::read_pod(&inner.pods, &name).await {
            Ok(None) => {
                info!(task_id = %task_id, pod = %name, "pod vanished while the watch was down");
                if let Some(tx) = inner.tracked.lock().get(&task_id) {
                    tx.send_modify(|s| s.deleted = true);
                }
            }
            Err(e) => debug!(task_id = %task_id, error = %e, "could not confirm a missing pod"),
            Ok(Some(_)) => {}
        }
    }
}
