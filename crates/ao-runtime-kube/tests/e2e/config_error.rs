//! A worker pod whose container configuration cannot be built (`CreateContainerConfigError`,
//! here: the `claude-worker-secrets` Secret is missing) fails within the configured grace as
//! `worker_config_error`, not at the task's deadline; a Secret created within the grace lets
//! it start. Runs on Tokio's paused clock: the 30 s grace passes in virtual time.

use std::sync::Arc;
use std::time::Duration;

use ao_core::lifecycle::Reason;
use ao_core::runtime::{Callback, LaunchSpec, Runtime, RuntimeEvent};
use ao_core::store::TaskStore;
use ao_kube_sim::{Sim, SimConfig};
use ao_runtime_kube::{KubeConfig, KubeRuntime};
use ao_store_sqlite::SqliteStore;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

use crate::common::*;

const GRACE: Duration = Duration::from_secs(30);

struct Fixture {
    sim: Sim,
    rt: KubeRuntime,
    events: UnboundedReceiver<RuntimeEvent>,
    spec: LaunchSpec,
    _dir: tempfile::TempDir,
}

/// A runtime over a simulator that lacks `claude-worker-secrets`; the clock is paused once
/// the store is set up.
async fn fixture() -> Fixture {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("ao.db")).await.unwrap());
    let sim = Sim::new(SimConfig::default());
    let id = submit(&store, spec("needs its secret")).await;
    let task = store.get(id).await.unwrap().unwrap();
    let (tx, events) = tokio::sync::mpsc::unbounded_channel();
    let cfg = KubeConfig {
        config_error_limit: GRACE,
        ..kube_config()
    };
    let rt = KubeRuntime::new(sim.client(NS), cfg, store, tx);
    tokio::time::pause();
    rt.start().await.unwrap();
    let spec = LaunchSpec {
        task,
        callback: Some(Callback {
            url: "http://orchestrator.agents.svc:8080".into(),
            token: "t".repeat(64),
        }),
    };
    Fixture {
        sim,
        rt,
        events,
        spec,
        _dir: dir,
    }
}

/// The next event, within two minutes of virtual time (the task's own deadline is 600 s).
async fn next_event(events: &mut UnboundedReceiver<RuntimeEvent>) -> RuntimeEvent {
    tokio::time::timeout(Duration::from_secs(120), events.recv())
        .await
        .expect("the pod's end is reported long before its deadline")
        .expect("the runtime is alive")
}

fn waiting_reason(sim: &Sim, name: &str) -> Option<String> {
    let pod = sim.pod(NS, name)?;
    let state = pod.status?.container_statuses?.first()?.state.clone()?;
    state.waiting?.reason
}

#[tokio::test]
async fn a_missing_worker_secret_fails_the_task_as_worker_config_error_after_the_grace() {
    let mut f = fixture().await;
    let name = pod_name(f.spec.task.id);
    let start = Instant::now();
    f.rt.launch(f.spec.clone()).await.unwrap();
    let RuntimeEvent::Exited { exit, .. } = next_event(&mut f.events).await else {
        panic!("expected an exit")
    };
    let waited = start.elapsed();
    assert!(
        waited >= GRACE && waited < GRACE + Duration::from_secs(2),
        "failed after {waited:?}"
    );
    assert_eq!(
        exit.reason,
        Some(Reason::Other("worker_config_error".into()))
    );
    let message = exit.message.unwrap_or_default();
    assert!(
        message.contains("CreateContainerConfigError")
            && message.contains("secret \"claude-worker-secrets\" not found"),
        "{message}"
    );
    let deleted = f
        .sim
        .requests()
        .iter()
        .any(|r| r.method == "DELETE" && r.path.ends_with(&format!("/pods/{name}")));
    assert!(
        deleted,
        "the stuck pod is deleted before the exit is reported"
    );
}

#[tokio::test]
async fn a_secret_created_within_the_grace_lets_the_pod_start() {
    let mut f = fixture().await;
    let name = pod_name(f.spec.task.id);
    f.rt.launch(f.spec.clone()).await.unwrap();
    tokio::time::sleep(GRACE / 3).await;
    assert_eq!(
        waiting_reason(&f.sim, &name).as_deref(),
        Some("CreateContainerConfigError"),
        "the kubelet is still retrying"
    );
    f.sim.put_secret(
        NS,
        "claude-worker-secrets",
        &[("ANTHROPIC_API_KEY", API_KEY)],
    );
    let RuntimeEvent::Exited { exit, .. } = next_event(&mut f.events).await else {
        panic!("expected an exit")
    };
    assert_eq!((exit.code, exit.reason), (Some(0), None));
}
