//! The node itself (Node, Lease, shutdown), graceful deletion and the no-op mode.

use std::time::Duration;

use ao_kube_node::Mode;
use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::{DeleteParams, LogParams};

use crate::harness::{Setup, phase, pod, running, terminal};

#[tokio::test(flavor = "multi_thread")]
async fn node_registers_ready_with_its_lease_and_shutdown_removes_it() {
    let s = Setup::new("node-reg").await;
    let node = s.node.as_ref().unwrap();
    let (name, port) = (node.name().to_owned(), node.log_port());
    let n = Api::<Node>::all(s.admin.clone()).get(&name).await.unwrap();
    let st = n.status.unwrap();
    let ready = st
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
    assert_eq!(
        st.daemon_endpoints.unwrap().kubelet_endpoint.unwrap().port,
        i32::from(port)
    );
    assert_eq!(st.allocatable.unwrap()["pods"].0, "20k"); // 20000, as the API server canonicalises it
    let lease = Api::<Lease>::namespaced(s.admin.clone(), "kube-node-lease")
        .get(&name)
        .await
        .unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some(name.as_str())
    );
    let admin = s.admin.clone();
    s.shutdown().await;
    assert!(
        Api::<Node>::all(admin)
            .get_opt(&name)
            .await
            .unwrap()
            .is_none(),
        "Node still there after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_delete_sends_sigterm_then_the_pod_is_gone() {
    let s = Setup::new("node-term").await;
    let script = "trap 'echo got SIGTERM; exit 0' TERM; echo ready; while true; do sleep 0.1; done";
    let uid = s.create(pod("term", script)).await.metadata.uid.unwrap();
    s.wait("term", 60, "running", running()).await;
    let follow = LogParams {
        follow: true,
        ..Default::default()
    };
    let mut lines = s
        .pods
        .log_stream("term", &follow)
        .await
        .expect("log stream")
        .lines();
    assert_eq!(lines.try_next().await.unwrap().as_deref(), Some("ready"));
    s.pods
        .delete(
            "term",
            &DeleteParams {
                grace_period_seconds: Some(10),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // The stream ends when the container exits; the shell's children got SIGTERM too.
    let rest: Vec<String> = tokio::time::timeout(Duration::from_secs(15), lines.try_collect())
        .await
        .expect("log stream still open 15 s after the delete")
        .unwrap();
    assert!(rest.iter().any(|l| l == "got SIGTERM"), "{rest:?}");
    s.wait_gone("term", &uid, 30).await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_ignored_is_killed_after_the_grace_period() {
    let s = Setup::new("node-kill").await;
    let uid = s
        .create(pod(
            "stubborn",
            "trap '' TERM; echo ready; while true; do sleep 0.1; done",
        ))
        .await
        .metadata
        .uid
        .unwrap();
    s.wait("stubborn", 60, "running", running()).await;
    let started = std::time::Instant::now();
    s.pods
        .delete(
            "stubborn",
            &DeleteParams {
                grace_period_seconds: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    s.wait_gone("stubborn", &uid, 30).await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "gone before its grace period: {:?}",
        started.elapsed()
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_finished_pod_completes() {
    let s = Setup::new("node-delfin").await;
    let uid = s.create(pod("fin", "true")).await.metadata.uid.unwrap();
    assert_eq!(
        phase(&s.wait("fin", 60, "terminal", terminal()).await),
        "Succeeded"
    );
    s.pods
        .delete("fin", &DeleteParams::default())
        .await
        .unwrap();
    s.wait_gone("fin", &uid, 30).await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn noop_mode_runs_many_pods_and_deletes_them_at_once() {
    let s = Setup::with("node-noop", Mode::Noop, true).await;
    let n = 100;
    for i in 0..n {
        s.create(pod(&format!("n{i}"), "exit 1")).await;
    }
    for i in 0..n {
        s.wait(&format!("n{i}"), 120, "running", running()).await;
    }
    s.pods
        .delete_collection(&DeleteParams::default(), &Default::default())
        .await
        .unwrap();
    let gone = tokio::time::timeout(Duration::from_secs(60), async {
        while !s
            .pods
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    assert!(gone.await.is_ok(), "no-op pods not all deleted within 60 s");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_kills_the_nodes_processes() {
    let s = Setup::new("node-down").await;
    // `$$$$`: Kubernetes expands `$$` in args to `$`, so the shell sees `$$`.
    s.create(pod("long", "echo pid=$$$$; sleep 300")).await;
    s.wait("long", 60, "running", running()).await;
    let follow = LogParams {
        follow: true,
        ..Default::default()
    };
    let mut lines = s
        .pods
        .log_stream("long", &follow)
        .await
        .expect("log stream")
        .lines();
    let first = lines.try_next().await.unwrap().unwrap_or_default();
    let pid: i32 = first
        .strip_prefix("pid=")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not a pid line: {first:?}"));
    drop(lines);
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    s.shutdown().await;
    // The process group is killed and reaped by the time shutdown returns.
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} outlived the node"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_force_deleted_by_someone_else_has_its_process_killed() {
    let s = Setup::new("node-force").await;
    s.create(pod("victim", "echo pid=$$$$; sleep 300")).await;
    s.wait("victim", 60, "running", running()).await;
    let follow = LogParams {
        follow: true,
        ..Default::default()
    };
    let mut lines = s
        .pods
        .log_stream("victim", &follow)
        .await
        .expect("log stream")
        .lines();
    let first = lines.try_next().await.unwrap().unwrap_or_default();
    let pid: i32 = first
        .strip_prefix("pid=")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not a pid line: {first:?}"));
    drop(lines);
    // Grace period 0: the pod is gone from the API at once; the node only sees it disappear.
    s.pods
        .delete(
            "victim",
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let proc_path = format!("/proc/{pid}");
    let killed = tokio::time::timeout(Duration::from_secs(20), async {
        while std::path::Path::new(&proc_path).exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert!(
        killed.await.is_ok(),
        "process {pid} still runs 20 s after its pod was force-deleted"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_force_delete_cuts_a_long_grace_period_short() {
    let s = Setup::new("node-cut").await;
    s.create(pod(
        "slowterm",
        "trap '' TERM; echo pid=$$$$; while true; do sleep 0.1; done",
    ))
    .await;
    s.wait("slowterm", 60, "running", running()).await;
    let follow = LogParams {
        follow: true,
        ..Default::default()
    };
    let mut lines = s
        .pods
        .log_stream("slowterm", &follow)
        .await
        .expect("log stream")
        .lines();
    let first = lines.try_next().await.unwrap().unwrap_or_default();
    let pid: i32 = first
        .strip_prefix("pid=")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not a pid line: {first:?}"));
    drop(lines);
    s.pods
        .delete(
            "slowterm",
            &DeleteParams {
                grace_period_seconds: Some(300),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    s.wait(
        "slowterm",
        30,
        "marked for deletion",
        |p: Option<&k8s_openapi::api::core::v1::Pod>| {
            p.is_some_and(|p| p.metadata.deletion_timestamp.is_some())
        },
    )
    .await;
    s.pods
        .delete(
            "slowterm",
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let proc_path = format!("/proc/{pid}");
    let killed = tokio::time::timeout(Duration::from_secs(20), async {
        while std::path::Path::new(&proc_path).exists() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert!(
        killed.await.is_ok(),
        "process {pid} still runs 20 s after the force delete (grace was 300 s)"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn noop_mode_honours_the_active_deadline() {
    let s = Setup::with("node-noopdl", Mode::Noop, true).await;
    let mut p = pod("dl", "true");
    p["spec"]["activeDeadlineSeconds"] = serde_json::json!(1);
    s.create(p).await;
    let done = s
        .wait("dl", 60, "terminal by its deadline", terminal())
        .await;
    assert_eq!(phase(&done), "Failed");
    assert_eq!(
        done.status.unwrap().reason.as_deref(),
        Some("DeadlineExceeded")
    );
    s.shutdown().await;
}
