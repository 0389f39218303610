//! `pods/log` through the API server to the node's HTTPS log endpoint.

use futures::{AsyncBufReadExt, TryStreamExt};
use kube::api::LogParams;

use ao_kube_node::Mode;

use crate::harness::{Setup, pod, running, terminal};

#[tokio::test(flavor = "multi_thread")]
async fn log_parameters_are_honoured() {
    let s = Setup::new("node-logq").await;
    s.create(pod(
        "lines",
        "for i in 1 2 3 4 5; do echo line$i; done; printf tail-without-newline",
    ))
    .await;
    s.wait("lines", 60, "terminal", terminal()).await;
    let get = |lp: LogParams| {
        let pods = s.pods.clone();
        async move { pods.logs("lines", &lp).await.expect("pods/log") }
    };
    assert_eq!(
        get(LogParams::default()).await,
        "line1\nline2\nline3\nline4\nline5\ntail-without-newline"
    );
    assert_eq!(
        get(LogParams {
            tail_lines: Some(2),
            ..Default::default()
        })
        .await,
        "line5\ntail-without-newline"
    );
    assert_eq!(
        get(LogParams {
            limit_bytes: Some(8),
            ..Default::default()
        })
        .await,
        "line1\nli"
    );
    let stamped = get(LogParams {
        timestamps: true,
        tail_lines: Some(1),
        ..Default::default()
    })
    .await;
    let (ts, text) = stamped.split_once(' ').expect("timestamp and text");
    assert!(
        ts.parse::<k8s_openapi::jiff::Timestamp>().is_ok(),
        "{stamped}"
    );
    assert_eq!(text, "tail-without-newline");
    assert_eq!(
        get(LogParams {
            since_seconds: Some(3600),
            tail_lines: Some(1),
            ..Default::default()
        })
        .await,
        "tail-without-newline"
    );
    let previous = s
        .pods
        .logs(
            "lines",
            &LogParams {
                previous: true,
                ..Default::default()
            },
        )
        .await;
    assert!(
        matches!(previous, Err(kube::Error::Api(ref e)) if e.code == 400),
        "{previous:?}"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn follow_streams_until_the_container_exits() {
    let s = Setup::new("node-follow").await;
    s.create(pod("f", "echo one; sleep 1; echo two; sleep 1; echo three"))
        .await;
    s.wait("f", 60, "running", running()).await;
    let follow = LogParams {
        follow: true,
        ..Default::default()
    };
    let lines: Vec<String> = s
        .pods
        .log_stream("f", &follow)
        .await
        .unwrap()
        .lines()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(lines, ["one", "two", "three"]);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn closed_log_endpoint_makes_pods_log_fail() {
    let s = Setup::with("node-nologs", Mode::Process, false).await;
    s.create(pod("quiet", "echo unseen")).await;
    s.wait("quiet", 60, "terminal", terminal()).await;
    let logs = s.pods.logs("quiet", &LogParams::default()).await;
    assert!(
        matches!(logs, Err(kube::Error::Api(ref e)) if e.code >= 500),
        "{logs:?}"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_logs_reads_the_container_output() {
    let s = Setup::new("node-kubectl").await;
    s.create(pod("k", "echo from-the-pod; echo second")).await;
    s.wait("k", 60, "terminal", terminal()).await;
    let env = ao_kube_testenv::env();
    let out = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&env.admin_kubeconfig)
        .args(["logs", "-n", &s.ns, "k", "--tail=1"])
        .output()
        .await
        .expect("kubectl is needed (/usr/bin/kubectl)");
    assert!(
        out.status.success(),
        "kubectl logs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "second\n");
    s.shutdown().await;
}
