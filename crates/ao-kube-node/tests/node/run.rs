//! Pods run their command as a process and end with its exit code.

use crate::harness::{Setup, phase, pod, state, terminal};
use kube::api::LogParams;

#[tokio::test(flavor = "multi_thread")]
async fn shell_command_succeeds_with_its_exit_code_and_pods_log_returns_its_output() {
    let s = Setup::new("node-ok").await;
    s.create(pod("ok", "echo hello; echo \"$HOSTNAME\"; exit 0"))
        .await;
    let p = s.wait("ok", 60, "terminal", terminal()).await;
    assert_eq!(phase(&p), "Succeeded");
    let t = state(&p).terminated.expect("terminated state");
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    let st = p.status.as_ref().unwrap();
    assert_eq!(st.pod_ip.as_deref(), Some("127.0.0.1"));
    assert!(st.start_time.is_some() && t.finished_at.is_some() && t.started_at.is_some());
    assert_eq!(
        p.spec.as_ref().unwrap().node_name.as_deref(),
        Some(s.node.as_ref().unwrap().name())
    );
    // Through the API server's pods/log proxy to the node's HTTPS endpoint.
    let logs = s
        .pods
        .logs("ok", &LogParams::default())
        .await
        .expect("pods/log");
    assert_eq!(logs, "hello\nok\n");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_command_fails_with_its_exit_code() {
    let s = Setup::new("node-fail").await;
    let mut spec = pod("bad", "echo about to fail; exit 7");
    spec["spec"]["containers"][0]["terminationMessagePolicy"] =
        serde_json::json!("FallbackToLogsOnError");
    s.create(spec).await;
    let p = s.wait("bad", 60, "terminal", terminal()).await;
    assert_eq!(phase(&p), "Failed");
    let t = state(&p).terminated.expect("terminated state");
    assert_eq!((t.exit_code, t.reason.as_deref()), (7, Some("Error")));
    assert_eq!(
        t.message.as_deref(),
        Some("about to fail\n"),
        "FallbackToLogsOnError: the log's tail"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_goes_pending_bound_running_through_the_api() {
    let s = Setup::new("node-phases").await;
    s.create(pod("slow", "echo started; sleep 30")).await;
    let p = s
        .wait("slow", 60, "running", crate::harness::running())
        .await;
    let conditions = p
        .status
        .as_ref()
        .unwrap()
        .conditions
        .clone()
        .unwrap_or_default();
    let has = |t: &str| {
        conditions
            .iter()
            .any(|c| c.type_ == t && c.status == "True")
    };
    assert!(
        has("PodScheduled") && has("Ready") && has("ContainersReady") && has("Initialized"),
        "{conditions:#?}"
    );
    let run = state(&p).running.expect("running state");
    assert!(run.started_at.is_some());
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn node_binds_and_writes_status_through_subresources_as_ao_kube_node() {
    let s = Setup::new("node-audit").await;
    let uid = s
        .create(pod("aud", "echo audited; sleep 60"))
        .await
        .metadata
        .uid
        .unwrap();
    s.wait("aud", 60, "running", crate::harness::running())
        .await;
    // A running pod's deletion is graceful: the node ends it (a terminal pod would go at once).
    s.pods.delete("aud", &Default::default()).await.unwrap();
    s.wait_gone("aud", &uid, 30).await;
    let events: Vec<_> = ao_kube_testenv::env()
        .audit()
        .into_iter()
        .filter(|e| {
            e.namespace.as_deref() == Some(s.ns.as_str())
                && e.resource.as_deref() == Some("pods")
                && e.name.as_deref() == Some("aud")
        })
        .filter(|e| e.user == "ao-kube-node")
        .collect();
    let count = |verb: &str, sub: Option<&str>| {
        events
            .iter()
            .filter(|e| e.verb == verb && e.subresource.as_deref() == sub && e.code < 300)
            .count()
    };
    assert_eq!(count("create", Some("binding")), 1, "{events:#?}");
    assert!(count("patch", Some("status")) >= 2, "{events:#?}");
    assert_eq!(
        count("delete", None),
        1,
        "the node finishes the deletion: {events:#?}"
    );
    // Everything else the node does to the pod is reading it (its watches).
    let others: Vec<_> = events
        .iter()
        .filter(|e| {
            !matches!(
                (e.verb.as_str(), e.subresource.as_deref()),
                ("create", Some("binding")) | ("patch", Some("status")) | ("delete", None)
            )
        })
        .collect();
    assert!(
        others
            .iter()
            .all(|e| matches!(e.verb.as_str(), "get" | "list" | "watch")),
        "{others:#?}"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_not_found_is_a_start_error_with_its_cause() {
    let s = Setup::new("node-noexec").await;
    let mut p = pod("noexec", "");
    p["spec"]["containers"][0]["command"] = serde_json::json!(["no-such-command-anywhere"]);
    s.create(p).await;
    let done = s.wait("noexec", 60, "terminal", terminal()).await;
    assert_eq!(phase(&done), "Failed");
    let t = state(&done).terminated.unwrap();
    assert_eq!(
        (t.exit_code, t.reason.as_deref()),
        (128, Some("StartError"))
    );
    let message = t.message.unwrap_or_default();
    assert!(
        message.contains("no-such-command-anywhere") && message.contains("No such file"),
        "{message}"
    );
    s.shutdown().await;
}
