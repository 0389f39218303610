//! Launches per second against the ceiling, all from the audit log in one run.
//!
//! - The ceiling: a minimal kube-rs client (the orchestrator's ServiceAccount credential of
//!   its own slice, so API Priority and Fairness treats it like the orchestrator) creates `n`
//!   restricted pods, 32 in flight. Measured before and after the orchestrator's bursts, so a
//!   drift of the shared API server shows.
//! - The orchestrator, with `--launch-concurrency 1` (one launch at a time, the scheduler's
//!   behaviour before launches were windowed) and with the default, two ways:
//!   - burst: `n` tasks submitted at once (32 HTTP requests in flight, `--max-concurrency n`)
//!     to an idle orchestrator, as the issue measured: submission and launch together;
//!   - backlog: `n` tasks already queued behind `--max-concurrency 1` (one running task
//!     holds the only slot), then the orchestrator is restarted with `--max-concurrency n+1`
//!     (a configuration change): the scheduler's launch path alone drains the queue.
//!
//! The rate is (creates − 1) / (last − first) over the `create pods` events'
//! `requestReceivedTimestamp`. Every slice has a no-op node, so pods are bound and go Running
//! in both cases alike.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ao_kube_node::Mode;
use ao_kube_testenv::env;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;

use super::audit;
use super::cluster::Cluster;
use super::orch::Orchestrator;

/// One measured burst.
pub struct Burst {
    pub what: String,
    pub creates: usize,
    pub per_sec: f64,
    /// For the orchestrator: first submission (or the restart) to the last task running.
    pub wall: Option<Duration>,
    /// For a burst: how long submitting the `n` tasks took (202s received).
    pub submit: Option<Duration>,
}

pub async fn bare(n: usize, image: &str, label: &str) -> Burst {
    let cluster = Cluster::new("bench-bare", Mode::Noop, images(image)).await;
    let client = cluster.sa_client().await;
    let api: Api<Pod> = Api::namespaced(client, &cluster.ns);
    let from = audit::mark();
    let pp = PostParams::default();
    let results: Vec<_> = futures::stream::iter(0..n)
        .map(|i| {
            let (api, pp) = (api.clone(), pp.clone());
            let pod = pod(&format!("bare-{i}"), image);
            async move { api.create(&pp, &pod).await }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for r in results {
        r.unwrap_or_else(|e| panic!("bare pod create: {e}"));
    }
    let (creates, per_sec) =
        audit::pod_create_rate(&cluster.ns, &cluster.orchestrator_user(), from);
    assert_eq!(creates, n, "the audit log shows every bare create");
    cluster.teardown().await;
    Burst {
        what: format!("bare kube-rs client, 32 in flight ({label})"),
        creates,
        per_sec,
        wall: None,
        submit: None,
    }
}

pub async fn orchestrator(n: usize, image: &str, launch_concurrency: usize) -> Burst {
    let cluster = Cluster::new("bench-burst", Mode::Noop, images(image)).await;
    let args: Vec<String> = [
        "--max-concurrency".to_owned(),
        n.to_string(),
        "--max-queued".to_owned(),
        (n + 10).to_string(),
        "--launch-concurrency".to_owned(),
        launch_concurrency.to_string(),
    ]
    .to_vec();
    let orch = Orchestrator::start(&cluster, image, &args);
    let from = audit::mark();
    let t0 = Instant::now();
    orch.submit_many(n, 32).await;
    let submit = t0.elapsed();
    orch.wait_count("running", n as u64, Duration::from_secs(600))
        .await;
    let wall = t0.elapsed();
    let (creates, per_sec) =
        audit::pod_create_rate(&cluster.ns, &cluster.orchestrator_user(), from);
    assert_eq!(creates, n, "one pod create per task");
    drop(orch);
    cluster.teardown().await;
    Burst {
        what: format!("orchestrator burst, --launch-concurrency {launch_concurrency}"),
        creates,
        per_sec,
        wall: Some(wall),
        submit: Some(submit),
    }
}

pub async fn backlog(n: usize, image: &str, launch_concurrency: usize) -> Burst {
    let cluster = Cluster::new("bench-backlog", Mode::Noop, images(image)).await;
    let args: Vec<String> = [
        "--max-concurrency".to_owned(),
        "1".to_owned(),
        "--max-queued".to_owned(),
        (n + 10).to_string(),
        "--launch-concurrency".to_owned(),
        launch_concurrency.to_string(),
    ]
    .to_vec();
    let mut orch = Orchestrator::start(&cluster, image, &args);
    orch.submit_many(1, 1).await;
    orch.wait_count("running", 1, Duration::from_secs(120))
        .await;
    orch.submit_many(n, 32).await;
    assert_eq!(orch.count("running").await, 1, "the one slot is held");
    orch.set_arg("--max-concurrency", &(n + 1).to_string());
    let from = audit::mark();
    let (t0, _) = orch.crash_and_restart();
    orch.wait_count("running", n as u64 + 1, Duration::from_secs(600))
        .await;
    let wall = t0.elapsed();
    let (creates, per_sec) =
        audit::pod_create_rate(&cluster.ns, &cluster.orchestrator_user(), from);
    assert_eq!(
        creates, n,
        "one pod create per queued task, none for the adopted one"
    );
    drop(orch);
    cluster.teardown().await;
    Burst {
        what: format!("orchestrator backlog, --launch-concurrency {launch_concurrency}"),
        creates,
        per_sec,
        wall: Some(wall),
        submit: None,
    }
}

/// An image for pods a no-op node runs (nothing is executed).
pub fn noop_image() -> String {
    env()
        .image("bench-noop", &[("true", std::path::Path::new("/bin/true"))])
        .0
}

/// No extra images: a node knows every image `env().image` made in this process.
fn images(_image: &str) -> BTreeMap<String, std::path::PathBuf> {
    BTreeMap::new()
}

/// A pod that passes Pod Security "restricted", like the orchestrator's worker pods.
fn pod(name: &str, image: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "kube-api"}},
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": super::cluster::WORKER_SA,
            "automountServiceAccountToken": false,
            "securityContext": {
                "runAsNonRoot": true, "runAsUser": 10001, "runAsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"}
            },
            "containers": [{
                "name": "main", "image": image, "imagePullPolicy": "IfNotPresent",
                "command": ["true"],
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]}
                }
            }]
        }
    }))
    .expect("a valid Pod")
}
