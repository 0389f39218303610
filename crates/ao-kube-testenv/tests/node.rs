//! `start_node` wires the process node to the environment: it runs a pod of a restricted
//! namespace from an image made with `image()`, the API server reaches its log endpoint with
//! the environment's PKI (`pods/log`), and the audit log names it `ao-kube-node`.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use ao_kube_testenv::{NodeOptions, env};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{LogParams, PostParams};

#[tokio::test]
async fn a_pod_runs_on_a_process_node_and_its_log_is_read_through_the_api_server() {
    let env = env();
    let start = env.audit_offset();
    let ns = env.namespace("node").await;
    let scratch = tempfile::tempdir().unwrap();
    let script = scratch.path().join("hello");
    std::fs::write(&script, "#!/bin/sh\necho \"hello from $(id -u)\"\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (image, _) = env.image("hello", &[("hello", script.as_path())]);
    let node = env.start_node(NodeOptions::new([ns.clone()])).await;

    let admin = env.admin().await;
    let nodes = Api::<Node>::all(admin.clone());
    let ready = nodes.get(node.name()).await.unwrap();
    let conditions = ready.status.and_then(|s| s.conditions).unwrap_or_default();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        "{conditions:?}"
    );

    let pods = Api::<Pod>::namespaced(admin.clone(), &ns);
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "hello" },
        "spec": {
            "restartPolicy": "Never",
            "securityContext": { "runAsNonRoot": true, "runAsUser": 1000, "runAsGroup": 1000,
                                 "seccompProfile": { "type": "RuntimeDefault" } },
            "containers": [{
                "name": "main", "image": image, "command": ["hello"],
                "securityContext": { "allowPrivilegeEscalation": false,
                                     "capabilities": { "drop": ["ALL"] } }
            }]
        }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    // Polled (a watch may get 410 Gone on a busy, compacted etcd), with a bound.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let pod = loop {
        let pod = pods.get("hello").await.unwrap();
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            break pod;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pod did not finish within 60 s: {:?} on node {:?}",
            pod.status,
            pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let status = pod.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Succeeded"), "{status:?}");
    assert_eq!(pod.spec.unwrap().node_name.as_deref(), Some(node.name()));

    let log = pods.logs("hello", &LogParams::default()).await.unwrap();
    assert_eq!(log, "hello from 1000\n");

    let events = env.audit_since(start);
    let by_node = |sub: &str| {
        events.iter().any(|e| {
            e.user == "ao-kube-node"
                && e.namespace.as_deref() == Some(ns.as_str())
                && e.resource.as_deref() == Some("pods")
                && e.subresource.as_deref() == Some(sub)
                && (200..300).contains(&e.code)
        })
    };
    assert!(
        by_node("binding"),
        "no pods/binding by ao-kube-node in the audit log"
    );
    assert!(
        by_node("status"),
        "no pods/status by ao-kube-node in the audit log"
    );
    assert!(
        events.iter().any(|e| e.user == "admin"
            && e.subresource.as_deref() == Some("log")
            && e.namespace.as_deref() == Some(ns.as_str())
            && e.code == 200),
        "no 200 for pods/log in the audit log"
    );

    let name = node.name().to_string();
    node.shutdown().await;
    assert!(
        nodes.get_opt(&name).await.unwrap().is_none(),
        "shutdown leaves the Node behind"
    );
}
