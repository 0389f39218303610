//! Requests per task lifecycle, from every client, counted in the audit log.
//!
//! - Ours: the real orchestrator (as its ServiceAccount) runs `n` tasks whose worker really
//!   ends: the pod's `agent-orchestrator` is a shell script that prints a line and exits 0.
//!   The worker never talks to the API server (its pod mounts no token), so what it does
//!   inside the pod changes no request; the script keeps the measurement quick and free of
//!   the Claude CLI. `--k8s-pod-ttl-seconds 0` lets the orchestrator delete each finished pod
//!   and its token Secret at once, so the lifecycle is complete when the task ends.
//! - A `batch/v1` Job per task (`ttlSecondsAfterFinished: 0`, `backoffLimit: 0`), created by a
//!   minimal client (admin), run by kube-controller-manager's Job controller; its pod runs
//!   `true` and exits 0. Complete when the Job and its pod are gone.
//!
//! Both on a process node (pods really run and exit), each in its own namespace. The window
//! ends when the objects are gone and the namespace has had no new request for 3 s.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use ao_kube_node::Mode;
use ao_kube_testenv::env;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::ListParams;

use super::audit::{self, Tally, Who};
use super::cluster::{self, Cluster};
use super::orch::{self, Orchestrator};

/// What one side measured.
pub struct Lifecycle {
    pub tasks: usize,
    pub tally: Tally,
}

impl Lifecycle {
    /// Requests per task from clients other than the node; from the node.
    pub fn per_task(&self) -> (f64, f64) {
        let n = self.tasks as f64;
        let node = self.tally.total(|w| *w == Who::Node) as f64;
        let rest = self.tally.total(|w| *w != Who::Node) as f64;
        (rest / n, node / n)
    }
}

const EXIT_WORKER: &str = "#!/bin/sh\necho \"kube_api bench worker $AO_TASK_ID: exit 0\"\nexit 0\n";

/// The worker image: `agent-orchestrator` is a script that prints a line and exits 0.
fn exit_image() -> (String, std::path::PathBuf) {
    let path = orch::scratch("exit-worker");
    std::fs::write(&path, EXIT_WORKER).expect("write the exit worker");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    env().image("bench-exit", &[("agent-orchestrator", path.as_path())])
}

pub async fn ours(n: usize) -> Lifecycle {
    let (image, dir) = exit_image();
    let cluster = Cluster::new(
        "bench-life",
        Mode::Process,
        BTreeMap::from([(image.clone(), dir)]),
    )
    .await;
    let args: Vec<String> = [
        "--k8s-pod-ttl-seconds",
        "0",
        "--max-concurrency",
        &n.to_string(),
    ]
    .map(String::from)
    .to_vec();
    let orch = Orchestrator::start(&cluster, &image, &args);
    quiet(&cluster.ns, Duration::from_secs(3)).await;
    let from = audit::mark();
    let ids = orch.submit_many(n, n).await;
    for id in &ids {
        wait_succeeded(&orch, id).await;
    }
    gone::<Pod>(&cluster, "app=claude-worker").await;
    gone_secrets(&cluster).await;
    quiet(&cluster.ns, Duration::from_secs(3)).await;
    let tally = Tally::of(
        &cluster.ns,
        from,
        &cluster.orchestrator_user(),
        &cluster.admin_user,
    );
    drop(orch);
    cluster.teardown().await;
    Lifecycle { tasks: n, tally }
}

pub async fn jobs(n: usize) -> Lifecycle {
    let (image, dir) = env().image("bench-true", &[("true", Path::new("/bin/true"))]);
    let cluster = Cluster::new(
        "bench-job",
        Mode::Process,
        BTreeMap::from([(image.clone(), dir)]),
    )
    .await;
    quiet(&cluster.ns, Duration::from_secs(3)).await;
    let from = audit::mark();
    let api: Api<Job> = Api::namespaced(cluster.admin.clone(), &cluster.ns);
    for i in 0..n {
        cluster::create(&api, &job(&format!("bench-job-{i}"), &image)).await;
    }
    gone::<Job>(&cluster, "bench=kube-api").await;
    gone::<Pod>(&cluster, "bench=kube-api").await;
    quiet(&cluster.ns, Duration::from_secs(3)).await;
    let tally = Tally::of(
        &cluster.ns,
        from,
        &cluster.orchestrator_user(),
        &cluster.admin_user,
    );
    cluster.teardown().await;
    Lifecycle { tasks: n, tally }
}

/// A Job whose one pod passes Pod Security "restricted" and runs `true`.
fn job(name: &str, image: &str) -> Job {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "labels": {"bench": "kube-api"}},
        "spec": {
            "ttlSecondsAfterFinished": 0,
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"bench": "kube-api"}},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": cluster::WORKER_SA,
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
            }
        }
    }))
    .expect("a valid Job")
}

async fn wait_succeeded(orch: &Orchestrator, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let t = orch.task(id).await;
        match t["status"].as_str().unwrap_or("") {
            "succeeded" => return,
            "failed" | "cancelled" | "timed_out" => {
                panic!("task {id} ended {t:#}\n{}", orch.log_tail(30))
            }
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "task {id} did not end in 300 s: {t:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait (bounded) until no object of kind `K` with `selector` is left in the namespace.
pub async fn gone<K>(cluster: &Cluster, selector: &str)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(cluster.admin.clone(), &cluster.ns);
    let lp = ListParams::default().labels(selector);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let left = api.list(&lp).await.expect("list").items.len();
        if left == 0 {
            return;
        }
        let kind = K::kind(&());
        assert!(
            Instant::now() < deadline,
            "{left} {kind} ({selector}) still there after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Wait (bounded) until the per-task token Secrets are gone (the worker Secret stays).
async fn gone_secrets(cluster: &Cluster) {
    let api: Api<Secret> = Api::namespaced(cluster.admin.clone(), &cluster.ns);
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let list = api
            .list(&ListParams::default())
            .await
            .expect("list secrets");
        let left = list
            .items
            .iter()
            .filter(|s| {
                s.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.ends_with("-token"))
            })
            .count();
        if left == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{left} token Secrets still there after 300 s"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Wait until `ns` has had no new request in the audit log for `still` (at most 120 s).
pub async fn quiet(ns: &str, still: Duration) {
    let from = audit::mark();
    let count = || {
        env()
            .audit_since(from)
            .iter()
            .filter(|e| e.namespace.as_deref() == Some(ns))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut last, mut since) = (count(), Instant::now());
    while since.elapsed() < still {
        assert!(Instant::now() < deadline, "namespace {ns} never went quiet");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = count();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
}
