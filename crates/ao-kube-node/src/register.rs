//! The Node object and its Lease: what makes the API server (and kube-controller-manager's
//! node lifecycle controller) see a Ready node whose log endpoint is on 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::{NodeError, Shared};

const FIELD_MANAGER: &str = "ao-kube-node";
const LEASE_NAMESPACE: &str = "kube-node-lease";
/// How often the Lease is renewed, as the kubelet does (`nodeLeaseDurationSeconds` / 4).
const LEASE_RENEW: Duration = Duration::from_secs(10);
const LEASE_DURATION_SECONDS: i32 = 40;

/// Creates or updates the Node `name` and writes its Ready status.
pub(crate) async fn register(
    client: &kube::Client,
    name: &str,
    log_port: u16,
) -> Result<Node, NodeError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    nodes
        .patch(name, &pp, &Patch::Apply(node_object(name)))
        .await
        .map_err(NodeError::api(format!("creating Node {name}")))?;
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(node_status(log_port, Timestamp::now())),
        )
        .await
        .map_err(NodeError::api(format!("writing the status of Node {name}")))
}

/// Deletes the Node and its Lease (best effort: logged when it fails).
pub(crate) async fn unregister(client: &kube::Client, name: &str) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    if let Err(error) = leases.delete(name, &DeleteParams::default()).await {
        tracing::warn!(node = %name, error = %error, "deleting the node's Lease");
    }
    let nodes: Api<Node> = Api::all(client.clone());
    if let Err(error) = nodes.delete(name, &DeleteParams::default()).await {
        tracing::warn!(node = %name, error = %error, "deleting the Node");
    }
}

/// Creates or renews the node's Lease (owned by its Node, so it goes with it).
pub(crate) async fn renew_lease(client: &kube::Client, node: &Node) -> Result<(), kube::Error> {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let uid = node.metadata.uid.as_deref().unwrap_or_default();
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    leases
        .patch(
            name,
            &pp,
            &Patch::Apply(lease_object(name, uid, Timestamp::now())),
        )
        .await
        .map(drop)
}

/// Renews the Lease every [`LEASE_RENEW`] until the node is cancelled.
pub(crate) async fn keep_lease(shared: Arc<Shared>, node: Node) {
    loop {
        tokio::select! {
            () = shared.cancel.cancelled() => return,
            () = tokio::time::sleep(LEASE_RENEW) => {}
        }
        if let Err(error) = renew_lease(&shared.client, &node).await {
            tracing::warn!(node = %shared.name, error = %error, "renewing the node Lease");
        }
    }
}

fn node_object(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": std::env::consts::ARCH,
                "ao-kube-node": "true",
            },
        },
    })
}

/// The Node's status: Ready, 127.0.0.1 only (no Hostname address, so the API server's log
/// proxy never tries to resolve the node's name), the log port, and room for many pods.
fn node_status(log_port: u16, now: Timestamp) -> Value {
    let resources = json!({"cpu": "64", "memory": "256Gi", "pods": "20000"});
    let condition = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": now.to_string(), "lastTransitionTime": now.to_string()})
    };
    json!({
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": log_port}},
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "nodeInfo": {
                "machineID": "", "systemUUID": "", "bootID": "",
                "kernelVersion": "", "osImage": "ao-kube-node",
                "containerRuntimeVersion": "ao-kube-node://process",
                "kubeletVersion": concat!("ao-kube-node/", env!("CARGO_PKG_VERSION")),
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": std::env::consts::ARCH,
            },
        }
    })
}

fn lease_object(name: &str, node_uid: &str, now: Timestamp) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": name,
            "namespace": LEASE_NAMESPACE,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}],
        },
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": micro_time(now),
        },
    })
}

/// `metav1.MicroTime` wants microseconds precisely (RFC 3339 with 6 fraction digits).
fn micro_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_advertises_log_port_and_only_the_loopback_address() {
        let s = node_status(4321, Timestamp::UNIX_EPOCH);
        assert_eq!(
            s["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"],
            4321
        );
        assert_eq!(
            s["status"]["addresses"],
            json!([{"type": "InternalIP", "address": "127.0.0.1"}])
        );
        assert_eq!(s["status"]["allocatable"]["pods"], "20000");
        let ready = s["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready");
        assert_eq!(ready.unwrap()["status"], "True");
    }

    #[test]
    fn micro_time_has_six_fraction_digits() {
        let t: Timestamp = "2026-01-02T03:04:05.123456789Z".parse().unwrap();
        assert_eq!(micro_time(t), "2026-01-02T03:04:05.123456Z");
    }
}
