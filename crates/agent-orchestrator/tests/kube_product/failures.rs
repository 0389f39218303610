//! The ways a worker pod ends other than by itself, on the real API server (proof 7): a
//! cancel (graceful deletion), the task's deadline (the scheduler's, and the pod's own
//! `activeDeadlineSeconds`), the memory
//! limit (OOMKilled), an image the node cannot pull, a missing worker Secret
//! (`CreateContainerConfigError`) and a pod deleted by someone else. The outcomes are those
//! `ao-runtime-kube`'s `podstate` and `pod_follower` define (and `tests/e2e/failures.rs`
//! checks on the simulator).

use serde_json::json;

use crate::support::orchestrator::status_reason;
use crate::support::pods::{PodRecorder, phase, wait_pod};
use crate::support::{ScriptWorld, script_world, wait_logged};

/// `--stop-grace` of these tests: the grace period of a cancel's pod deletion.
const GRACE: i64 = 10;

fn world(prefix: &str) -> ScriptWorld<'_> {
    ScriptWorld {
        prefix,
        secret: true,
        serve_logs: true,
        image: None,
        args: &["--stop-grace", "10"],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_deletes_the_pod_gracefully_and_the_task_is_cancelled() {
    let (cluster, orch) = script_world(world("kp-cancel")).await;
    let id = orch
        .submit(json!({"prompt": "hold", "env": {"KP_MODE": "hold"}}))
        .await;
    wait_logged(&orch, &id, "holding", 90).await;
    let pod = format!("claude-worker-{id}");
    let pods = cluster.pods();
    let seen = PodRecorder::start(&pods, &pod).await;

    let (code, v) = orch.cancel(&id).await;
    assert_eq!(code, 202, "{v}");
    let t = orch.wait_terminal(&id, 60).await;
    assert_eq!(
        status_reason(&t),
        ("cancelled", "cancelled_by_user"),
        "{t:#}"
    );
    wait_pod(&pods, &pod, 60, "deleted", |p| p.is_none()).await;

    // Deleted with the grace period; the worker got SIGTERM (its trap ran: 143, not 137) and
    // its last words were stored.
    let graces: Vec<_> = seen
        .versions()
        .iter()
        .flatten()
        .filter_map(|p| p.metadata.deletion_grace_period_seconds)
        .collect();
    assert!(
        graces.contains(&GRACE),
        "deletion grace periods seen: {graces:?}"
    );
    assert_eq!(t["exit_code"], 143, "{t:#}");
    let logs = orch.logs(&id).await;
    assert!(logs.contains("script worker got SIGTERM"), "{logs}");
    let deletes = cluster.orchestrator_requests("delete", "pods", None, Some(&pod));
    assert_eq!(deletes.len(), 1, "one delete of the pod: {deletes:?}");
    drop(orch);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_ends_the_task_as_timed_out() {
    let (cluster, orch) = script_world(world("kp-deadline")).await;
    let id = orch
        .submit(json!({"prompt": "hold", "timeout_seconds": 3, "env": {"KP_MODE": "hold"}}))
        .await;
    let pod = format!("claude-worker-{id}");
    let pods = cluster.pods();
    let created = wait_pod(&pods, &pod, 60, "created", |p| p.is_some()).await;
    let deadline = created
        .and_then(|p| p.spec)
        .and_then(|s| s.active_deadline_seconds);
    assert_eq!(deadline, Some(3), "the pod carries the task's deadline");
    let t = orch.wait_terminal(&id, 90).await;
    assert_eq!(
        status_reason(&t),
        ("timed_out", "deadline_exceeded"),
        "{t:#}"
    );
    // Whoever came first (the node's activeDeadlineSeconds or the scheduler's own deadline),
    // the pod does not run on.
    let end = wait_pod(&pods, &pod, 60, "ended", |p| {
        p.is_none() || matches!(phase(p), Some("Failed" | "Succeeded"))
    })
    .await;
    let by = end
        .as_ref()
        .and_then(|p| p.status.as_ref()?.reason.clone())
        .unwrap_or_else(|| "the orchestrator's delete".into());
    eprintln!("deadline test: the pod was ended by {by}");
    drop(orch);
    cluster.shutdown().await;
}

/// The pod's own `activeDeadlineSeconds`, enforced by the node while no orchestrator runs
/// (killed as soon as the pod runs, so the scheduler's deadline cannot come first): the
/// restarted orchestrator finds the pod `Failed`/`DeadlineExceeded` and times the task out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pods_own_active_deadline_ends_the_task_as_timed_out() {
    let (cluster, mut orch) = script_world(world("kp-poddeadline")).await;
    let id = orch
        .submit(json!({"prompt": "hold", "timeout_seconds": 3, "env": {"KP_MODE": "hold"}}))
        .await;
    let pod = format!("claude-worker-{id}");
    let pods = cluster.pods();
    wait_pod(&pods, &pod, 60, "Running", |p| phase(p) == Some("Running")).await;
    orch.kill();
    let failed = wait_pod(&pods, &pod, 60, "DeadlineExceeded", |p| {
        p.and_then(|p| p.status.as_ref()?.reason.as_deref()) == Some("DeadlineExceeded")
    })
    .await;
    assert_eq!(phase(failed.as_ref()), Some("Failed"));
    orch.restart();
    let t = orch.wait_terminal(&id, 60).await;
    assert_eq!(
        status_reason(&t),
        ("timed_out", "deadline_exceeded"),
        "{t:#}"
    );
    // The node ended it: the orchestrator never stopped (deleted) the pod.
    let deletes = cluster.orchestrator_requests("delete", "pods", None, Some(&pod));
    assert!(deletes.is_empty(), "{deletes:#?}");
    drop(orch);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_over_its_memory_limit_is_oom_killed() {
    let mut w = world("kp-oom");
    w.args = &["--k8s-memory-request", "32Mi", "--k8s-memory-limit", "64Mi"];
    let (cluster, orch) = script_world(w).await;
    let id = orch
        .submit(json!({"prompt": "allocate", "env": {"KP_MODE": "alloc"}}))
        .await;
    let t = orch.wait_terminal(&id, 90).await;
    assert_eq!(status_reason(&t), ("failed", "oom_killed"), "{t:#}");
    assert_eq!(t["exit_code"], 137, "{t:#}");
    let pod = wait_pod(
        &cluster.pods(),
        &format!("claude-worker-{id}"),
        30,
        "kept",
        |p| p.is_some(),
    )
    .await;
    let terminated = pod.and_then(|p| {
        p.status?
            .container_statuses?
            .first()?
            .state
            .clone()?
            .terminated
    });
    assert_eq!(
        terminated.and_then(|t| t.reason).as_deref(),
        Some("OOMKilled"),
        "the node reported the kill"
    );
    drop(orch);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_the_node_cannot_pull_fails_the_task_and_leaves_no_pod() {
    let mut w = world("kp-pull");
    w.image = Some("registry.invalid/agent-orchestrator/not-on-this-node:1");
    w.args = &["--k8s-image-pull-timeout-seconds", "3"];
    let (cluster, orch) = script_world(w).await;
    let id = orch.submit(json!({"prompt": "never starts"})).await;
    let t = orch.wait_terminal(&id, 90).await;
    assert_eq!(status_reason(&t), ("failed", "image_pull_failed"), "{t:#}");
    let message = t["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("ErrImagePull") || message.contains("ImagePullBackOff"),
        "the message says why: {message:?}"
    );
    wait_pod(
        &cluster.pods(),
        &format!("claude-worker-{id}"),
        60,
        "deleted",
        |p| p.is_none(),
    )
    .await;
    drop(orch);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_worker_secret_fails_the_task_as_worker_config_error() {
    let mut w = world("kp-nosecret");
    w.secret = false;
    w.args = &["--k8s-config-error-timeout-seconds", "3"];
    let (cluster, orch) = script_world(w).await;
    let id = orch.submit(json!({"prompt": "needs its secret"})).await;
    let t = orch.wait_terminal(&id, 90).await;
    assert_eq!(
        status_reason(&t),
        ("failed", "worker_config_error"),
        "{t:#}"
    );
    let message = t["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("CreateContainerConfigError") && message.contains("claude-worker-secrets"),
        "the message names the Secret: {message:?}"
    );
    wait_pod(
        &cluster.pods(),
        &format!("claude-worker-{id}"),
        60,
        "deleted",
        |p| p.is_none(),
    )
    .await;
    drop(orch);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_deleted_by_someone_else_fails_the_task_as_worker_lost() {
    let (cluster, orch) = script_world(world("kp-deleted")).await;
    let id = orch
        .submit(json!({"prompt": "hold", "env": {"KP_MODE": "hold"}}))
        .await;
    wait_logged(&orch, &id, "holding", 90).await;
    let pod = format!("claude-worker-{id}");
    let pods = cluster.pods();
    pods.delete(&pod, &Default::default())
        .await
        .expect("admin deletes the pod");
    let t = orch.wait_terminal(&id, 90).await;
    assert_eq!(status_reason(&t), ("failed", "worker_lost"), "{t:#}");
    let message = t["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("deleted"),
        "the message says why: {message:?}"
    );
    // The orchestrator never deleted (nor re-created) it.
    let deleted = cluster.orchestrator_requests("delete", "pods", None, Some(&pod));
    assert!(deleted.iter().all(|e| e.code == 404), "{deleted:?}");
    assert_eq!(
        cluster
            .orchestrator_requests("create", "pods", None, None)
            .len(),
        1
    );
    drop(orch);
    cluster.shutdown().await;
}
