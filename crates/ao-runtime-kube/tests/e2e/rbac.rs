//! The Role in `deploy/rbac.yaml` against the calls the runtime really makes: a full task
//! lifecycle (create, watch, logs, cancel, garbage collection, adoption after a restart)
//! runs against the simulator, whose request log gives each call's RBAC verb, resource and
//! namespace. Every (resource, verb) used must be granted, and every grant must be used.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use ao_core::lifecycle::TaskStatus;
use ao_core::runtime::{Adoption, Runtime};
use ao_core::scheduler::SchedulerConfig;
use ao_core::store::TaskStore;
use ao_kube_sim::{Behaviour, SimConfig, Step};
use ao_runtime_kube::{KubeConfig, KubeRuntime};
use k8s_openapi::api::rbac::v1::Role;
use serde::Deserialize;

use crate::common::*;

/// (resource, verb) pairs the Role in deploy/rbac.yaml grants in the worker namespace.
fn granted() -> BTreeSet<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/rbac.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = BTreeSet::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = serde_yaml_ng::Value::deserialize(doc).unwrap();
        if value["kind"].as_str() != Some("Role") {
            continue;
        }
        let role: Role = serde_yaml_ng::from_value(value).unwrap();
        assert_eq!(role.metadata.namespace.as_deref(), Some(NS));
        for rule in role.rules.unwrap_or_default() {
            for r in rule.resources.unwrap_or_default() {
                for v in &rule.verbs {
                    out.insert((r.clone(), v.clone()));
                }
            }
        }
    }
    assert!(!out.is_empty(), "deploy/rbac.yaml has a Role");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_role_grants_exactly_the_calls_of_a_full_lifecycle() {
    let sc = SchedulerConfig {
        worker_retention: Duration::ZERO,
        gc_interval: Duration::from_millis(50),
        ..sched_config()
    };
    let mut e = env_with(SimConfig::default(), sc).await;
    // A task with output runs to its end; its pod and token secret are collected.
    let done = submit(&e.store, spec("log and exit")).await;
    e.sim
        .set_behaviour(&pod_name(done), script(&["hello"], 20, 0));
    let t = run_to_end(&mut e.sched, &e.store, done, Duration::from_secs(10)).await;
    assert_eq!(t.status, TaskStatus::Succeeded);
    assert_eq!(log_lines(&e.store, done).await, ["hello"]);
    let sim = e.sim.clone();
    tick_until(&mut e.sched, Duration::from_secs(10), || {
        sim.pods(NS).is_empty() && sim.secrets(NS).len() == 1
    })
    .await;
    // A running task is cancelled.
    let cancelled = submit(&e.store, spec("hang")).await;
    e.sim.set_behaviour(
        &pod_name(cancelled),
        Behaviour::Script(vec![Step::Log("up".into()), Step::Hang]),
    );
    let store = e.store.clone();
    tick_until(&mut e.sched, Duration::from_secs(10), || {
        sim.pod(NS, &pod_name(cancelled)).is_some()
    })
    .await;
    e.store.request_cancel(cancelled).await.unwrap();
    let t = run_to_end(&mut e.sched, &store, cancelled, Duration::from_secs(10)).await;
    assert_eq!(t.status, TaskStatus::Cancelled);
    // A running pod is adopted by a restarted runtime whose pod cache is not filled yet.
    let adopted = submit(&e.store, spec("adopt me")).await;
    e.sim
        .set_behaviour(&pod_name(adopted), Behaviour::forever());
    tick_until(&mut e.sched, Duration::from_secs(10), || {
        sim.pod(NS, &pod_name(adopted)).is_some()
    })
    .await;
    let task = e.store.get(adopted).await.unwrap().unwrap();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let cfg = KubeConfig {
        cache_ready_timeout: Duration::from_millis(10),
        ..kube_config()
    };
    let restarted = KubeRuntime::new(e.sim.client(NS), cfg, e.store.clone(), tx);
    assert!(matches!(
        restarted.adopt(&task).await.unwrap(),
        Adoption::Alive(_)
    ));
    assert!(restarted.workers().await.unwrap().contains(&adopted));

    let mut used = BTreeSet::new();
    for a in e.sim.accesses() {
        assert_eq!(a.namespace.as_deref(), Some(NS), "namespaced only: {a:?}");
        used.insert((a.resource, a.verb));
    }
    let granted = granted();
    let missing: Vec<_> = used.difference(&granted).collect();
    assert!(missing.is_empty(), "used but not granted: {missing:?}");
    let unused: Vec<_> = granted.difference(&used).collect();
    assert!(unused.is_empty(), "granted but never used: {unused:?}");
}
