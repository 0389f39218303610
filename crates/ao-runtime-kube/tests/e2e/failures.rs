//! Workers that fail in Kubernetes-specific ways: deadline, image pull, unschedulable,
//! OOM, and a pod deleted behind the orchestrator's back.

use std::time::Duration;

use ao_core::lifecycle::{Reason, TaskStatus};
use ao_core::task::Task;
use ao_kube_sim::{Behaviour, SimConfig, Step};

use crate::common::*;

async fn run_one(cfg: SimConfig, b: Behaviour, timeout_seconds: u64) -> (Env, Task) {
    let mut e = env_with(cfg, sched_config()).await;
    let mut s = spec("fail somehow");
    s.timeout_seconds = timeout_seconds;
    let id = submit(&e.store, s).await;
    e.sim.set_behaviour(&pod_name(id), b);
    let t = run_to_end(&mut e.sched, &e.store, id, Duration::from_secs(15)).await;
    (e, t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_enforced_deadline_is_timed_out() {
    // activeDeadlineSeconds 30, one "second" lasting 10 ms: Kubernetes ends it first.
    let cfg = SimConfig {
        deadline_unit: Duration::from_millis(10),
        ..SimConfig::default()
    };
    let (_e, t) = run_one(cfg, Behaviour::forever(), 30).await;
    assert_eq!(
        (t.status, t.reason),
        (TaskStatus::TimedOut, Reason::DeadlineExceeded)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_enforced_deadline_is_timed_out() {
    // The pod's own deadline (activeDeadlineSeconds 1) lasts 10 s here: the scheduler is first.
    let cfg = SimConfig {
        deadline_unit: Duration::from_secs(10),
        ..SimConfig::default()
    };
    let (e, t) = run_one(cfg, Behaviour::forever(), 1).await;
    assert_eq!(
        (t.status, t.reason),
        (TaskStatus::TimedOut, Reason::DeadlineExceeded)
    );
    // The pod was deleted.
    sim_until(&e.sim, Duration::from_secs(5), |s| s.pods(NS).is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_pull_failure_fails_the_task_and_deletes_the_pod() {
    let (e, t) = run_one(SimConfig::default(), Behaviour::ImagePullBackOff, 600).await;
    assert_eq!(
        (t.status, t.reason.to_string().as_str()),
        (TaskStatus::Failed, "image_pull_failed")
    );
    assert!(t.message.unwrap_or_default().contains("ImagePullBackOff"));
    // The stuck pod was deleted.
    sim_until(&e.sim, Duration::from_secs(5), |s| s.pods(NS).is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedulable_pod_fails_the_task() {
    let (e, t) = run_one(SimConfig::default(), Behaviour::Unschedulable, 600).await;
    assert_eq!(
        (t.status, t.reason.to_string().as_str()),
        (TaskStatus::Failed, "unschedulable")
    );
    assert!(t.message.unwrap_or_default().contains("Insufficient cpu"));
    sim_until(&e.sim, Duration::from_secs(5), |s| s.pods(NS).is_empty()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_killed_container_is_reported() {
    let b = Behaviour::Script(vec![
        Step::Log("allocating".into()),
        Step::Sleep(Duration::from_millis(50)),
        Step::OomKill,
    ]);
    let (_e, t) = run_one(SimConfig::default(), b, 600).await;
    assert_eq!(
        (t.status, t.reason),
        (TaskStatus::Failed, Reason::Other("oom_killed".into()))
    );
    assert_eq!(t.exit_code, Some(137));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_deleted_by_someone_else_is_worker_lost() {
    let mut e = env().await;
    let id = submit(&e.store, spec("x")).await;
    e.sim.set_behaviour(
        &pod_name(id),
        Behaviour::Script(vec![Step::Log("up".into()), Step::Hang]),
    );
    let name = pod_name(id);
    // Deleted once it has run a while (its log is being followed): the log survives.
    tick_until_logged(&mut e.sched, &e.store, id, 1).await;
    assert!(e.sim.delete_pod(NS, &name, 5));
    let t = run_to_end(&mut e.sched, &e.store, id, Duration::from_secs(10)).await;
    assert_eq!(
        (t.status, t.reason),
        (TaskStatus::Failed, Reason::WorkerLost)
    );
    assert_eq!(log_lines(&e.store, id).await, ["up"]);
}
