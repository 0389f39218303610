//! The orchestrator with many running pods: its memory, and how long it takes to re-adopt
//! them after a `kill -9`.
//!
//! `n` tasks are submitted to one orchestrator (`--max-concurrency n`) whose pods a no-op node
//! takes to Running and keeps there. Once `/metrics` says all `n` run and the API server shows
//! `n` pods in phase Running, the orchestrator's RSS is read from `/proc/<pid>/status`. Then it is killed with SIGKILL and started again on the
//! same data dir; re-adoption is over when it logs `scheduler recovered state from the store`
//! (recovery has asked the runtime about every active task; `looked_at` and `set_aside` are
//! its fields), which must say `n` looked at and none set aside. The audit log then must show
//! exactly `n` pod creates: nothing was launched twice.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ao_kube_node::Mode;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

use super::audit;
use super::cluster::Cluster;
use super::orch::Orchestrator;

pub struct Scale {
    pub pods: usize,
    pub rss_idle_kib: u64,
    pub rss_running_kib: u64,
    pub rss_adopted_kib: u64,
    /// Submission of the first task to all running.
    pub launch_all: Duration,
    /// Restart (spawn) to `listening`.
    pub to_listening: Duration,
    /// Restart (spawn) to recovery done.
    pub to_adopted: Duration,
}

pub async fn run(n: usize, image: &str) -> Scale {
    let cluster = Cluster::new("bench-scale", Mode::Noop, BTreeMap::new()).await;
    let args: Vec<String> = [
        "--max-concurrency".to_owned(),
        n.to_string(),
        "--max-queued".to_owned(),
        (n + 10).to_string(),
    ]
    .to_vec();
    let mut orch = Orchestrator::start(&cluster, image, &args);
    let rss_idle_kib = orch.rss_kib();
    let from = audit::mark();
    let t0 = Instant::now();
    orch.submit_many(n, 32).await;
    let limit = Duration::from_secs(60 + n as u64 / 4);
    orch.wait_count("running", n as u64, limit).await;
    let launch_all = t0.elapsed();
    pods_running(&cluster, n, limit).await;
    let rss_running_kib = orch.rss_kib();

    let (at, from_line) = orch.crash_and_restart();
    let listening = orch.wait_logged_from(from_line, "listening", Duration::from_secs(60));
    let recovered =
        orch.wait_logged_from(from_line, "scheduler recovered state from the store", limit);
    let (to_listening, to_adopted) = (listening.0 - at, recovered.0 - at);
    let v = &recovered.1;
    assert_eq!(
        v["looked_at"].as_u64(),
        Some(n as u64),
        "recovery looked at every task: {v}"
    );
    assert_eq!(
        v["set_aside"].as_u64(),
        Some(0),
        "recovery set nothing aside: {v}"
    );
    orch.wait_count("running", n as u64, Duration::from_secs(60))
        .await;
    let rss_adopted_kib = orch.rss_kib();
    let (creates, _) = audit::pod_create_rate(&cluster.ns, &cluster.orchestrator_user(), from);
    assert_eq!(creates, n, "no pod was created twice across the restart");
    drop(orch);
    cluster.teardown().await;
    Scale {
        pods: n,
        rss_idle_kib,
        rss_running_kib,
        rss_adopted_kib,
        launch_all,
        to_listening,
        to_adopted,
    }
}

/// Wait (bounded) until the API server shows `n` pods in phase Running.
async fn pods_running(cluster: &Cluster, n: usize, limit: Duration) {
    let api: Api<Pod> = Api::namespaced(cluster.admin.clone(), &cluster.ns);
    let deadline = Instant::now() + limit;
    loop {
        let list = api.list(&ListParams::default()).await.expect("list pods");
        let running = list
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        if running >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {running} of {n} pods Running after {limit:?}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
