//! The scheduler: watches the unbound pods of one namespace and binds each to this node
//! through the `pods/binding` subresource, as kube-scheduler would. Pods really go Pending →
//! bound → Running through the API.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::Shared;

/// Bindings in flight at once (a burst of thousands of pods should not be serialised).
const CONCURRENT_BINDINGS: usize = 32;

/// Binds every unbound pod of `ns` until the node is cancelled.
pub(crate) async fn run(shared: Arc<Shared>, ns: String) {
    let pods: Api<Pod> = Api::namespaced(shared.client.clone(), &ns);
    let cfg = watcher::Config::default().fields("spec.nodeName=");
    let mut events = std::pin::pin!(watcher(pods.clone(), cfg));
    let permits = Arc::new(Semaphore::new(CONCURRENT_BINDINGS));
    let mut inflight = JoinSet::new();
    loop {
        let event = tokio::select! {
            () = shared.cancel.cancelled() => break,
            event = events.next() => event,
            Some(_) = inflight.join_next(), if !inflight.is_empty() => continue,
        };
        let pod = match event {
            Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => pod,
            Some(Ok(_)) => continue,
            Some(Err(error)) => {
                // The watcher backs off and relists by itself; say why it had to.
                tracing::warn!(namespace = %ns, error = %error, "unbound-pod watch");
                continue;
            }
            None => break,
        };
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(name) = pod.metadata.name else {
            continue;
        };
        let (pods, node, permits) = (pods.clone(), shared.name.clone(), permits.clone());
        inflight.spawn(async move {
            let _permit = permits.acquire_owned().await;
            bind(&pods, &name, &node).await;
        });
    }
    inflight.abort_all();
}

/// Binds one pod, retrying a failed request a few times (a conflict or a gone pod is final).
async fn bind(pods: &Api<Pod>, pod: &str, node: &str) {
    for attempt in 0..5u32 {
        let result: Result<Value, _> = pods
            .create_subresource("binding", pod, &PostParams::default(), &binding(pod, node))
            .await;
        match result {
            Ok(_) => return tracing::debug!(pod, node, "bound"),
            // Already bound (by us, through an earlier event) or deleted meanwhile.
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {
                return tracing::debug!(pod, node, code = e.code, "not bound");
            }
            Err(error) => {
                tracing::warn!(pod, node, attempt, error = %error, "binding the pod");
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
            }
        }
    }
}

fn binding(pod: &str, node: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_targets_the_node() {
        let b = binding("p", "n");
        assert_eq!(
            b["target"],
            json!({"apiVersion": "v1", "kind": "Node", "name": "n"})
        );
        assert_eq!(b["metadata"]["name"], "p");
    }
}
