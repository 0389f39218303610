//! The pods bound to this node in one namespace: one watch (`spec.nodeName=<node>`), and one
//! task per pod (by uid, see [`crate::run`]) fed the pod's latest version through a `watch`
//! channel (`None`: the pod is gone from the API). A relist tells gone pods apart too.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::{Shared, run};

/// Runs the pods of `ns` bound to this node until the node is cancelled, then waits for their
/// tasks to stop (they kill their processes).
pub(crate) async fn run(shared: Arc<Shared>, ns: String) {
    let api: Api<Pod> = Api::namespaced(shared.client.clone(), &ns);
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", shared.name));
    let mut events = std::pin::pin!(watcher(api, cfg));
    let mut tasks: JoinSet<String> = JoinSet::new();
    let mut pods: HashMap<String, watch::Sender<Option<Pod>>> = HashMap::new();
    let mut listed: Option<HashSet<String>> = None;
    loop {
        let event = tokio::select! {
            () = shared.cancel.cancelled() => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok(uid) = done {
                    pods.remove(&uid);
                }
                continue;
            }
            event = events.next() => event,
        };
        match event {
            Some(Ok(watcher::Event::Init)) => listed = Some(HashSet::new()),
            Some(Ok(watcher::Event::InitApply(pod))) => {
                if let (Some(seen), Some(uid)) = (listed.as_mut(), pod.metadata.uid.clone()) {
                    seen.insert(uid);
                }
                dispatch(&shared, &mut pods, &mut tasks, pod);
            }
            Some(Ok(watcher::Event::InitDone)) => {
                let seen = listed.take().unwrap_or_default();
                for (uid, tx) in &pods {
                    if !seen.contains(uid) {
                        tx.send_replace(None);
                    }
                }
            }
            Some(Ok(watcher::Event::Apply(pod))) => dispatch(&shared, &mut pods, &mut tasks, pod),
            Some(Ok(watcher::Event::Delete(pod))) => {
                if let Some(tx) = pod.metadata.uid.as_ref().and_then(|u| pods.get(u)) {
                    tx.send_replace(None);
                }
            }
            Some(Err(error)) => tracing::warn!(namespace = %ns, error = %error, "bound-pod watch"),
            None => break,
        }
    }
    // Cancelled: every pod task sees it, kills its processes and returns.
    while tasks.join_next().await.is_some() {}
}

fn dispatch(
    shared: &Arc<Shared>,
    pods: &mut HashMap<String, watch::Sender<Option<Pod>>>,
    tasks: &mut JoinSet<String>,
    pod: Pod,
) {
    let Some(uid) = pod.metadata.uid.clone() else {
        return;
    };
    if let Some(tx) = pods.get(&uid) {
        tx.send_replace(Some(pod));
        return;
    }
    let (tx, rx) = watch::channel(Some(pod));
    pods.insert(uid.clone(), tx);
    let shared = shared.clone();
    tasks.spawn(async move {
        run::run_pod(shared, rx).await;
        uid
    });
}
