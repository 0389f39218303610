//! The happy paths: success, a failing exit code, cancellation, GC, and an orchestrator
//! restart with pods running (and finishing) while it was down.

use std::time::Duration;

use ao_core::lifecycle::{Reason, TaskStatus};
use ao_core::scheduler::SchedulerConfig;
use ao_core::store::TaskStore;
use ao_kube_sim::{Behaviour, SimConfig, Step};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_runs_to_success_with_its_logs_stored() {
    let mut e = env().await;
    let id = submit(&e.store, spec("say hello")).await;
    e.sim
        .set_behaviour(&pod_name(id), script(&["hello", "from", "the pod"], 100, 0));
    let t = run_to_end(&mut e.sched, &e.store, id, Duration::from_secs(10)).await;
    assert_eq!(
        (t.status, t.reason.clone()),
        (TaskStatus::Succeeded, Reason::Completed)
    );
    assert_eq!(t.exit_code, Some(0));
    assert_eq!(t.worker.unwrap().name, pod_name(id));
    assert_eq!(log_lines(&e.store, id).await, ["hello", "from", "the pod"]);
    // The token secret exists while the pod is kept.
    assert!(
        e.sim
            .secret(NS, &format!("{}-token", pod_name(id)))
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_zero_exit_fails_with_its_code_and_termination_message() {
    let mut e = env().await;
    let id = submit(&e.store, spec("fail")).await;
    e.sim
        .set_behaviour(&pod_name(id), script(&["working", "fatal: boom"], 50, 3));
    let t = run_to_end(&mut e.sched, &e.store, id, Duration::from_secs(10)).await;
    assert_eq!(
        (t.status, t.reason.clone()),
        (TaskStatus::Failed, Reason::ExitCode(3))
    );
    assert_eq!(t.reason.to_string(), "exit_code_3");
    assert!(t.message.unwrap_or_default().contains("fatal: boom"));
    assert_eq!(log_lines(&e.store, id).await, ["working", "fatal: boom"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_deletes_the_pod_with_the_grace_period() {
    let mut e = env().await;
    let id = submit(&e.store, spec("long")).await;
    e.sim.set_behaviour(
        &pod_name(id),
        Behaviour::Script(vec![Step::Log("started".into()), Step::Hang]),
    );
    let name = pod_name(id);
    tick_until_logged(&mut e.sched, &e.store, id, 1).await;
    e.store.request_cancel(id).await.unwrap();
    let t = run_to_end(&mut e.sched, &e.store, id, Duration::from_secs(10)).await;
    assert_eq!(
        (t.status, t.reason),
        (TaskStatus::Cancelled, Reason::CancelledByUser)
    );
    let deletes: Vec<_> = e
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE" && r.path.ends_with(&name))
        .collect();
    assert_eq!(deletes.len(), 1, "one delete: {deletes:?}");
    let body: serde_json::Value = serde_json::from_slice(&deletes[0].body).unwrap();
    assert_eq!(body["gracePeriodSeconds"], 2);
    assert!(e.sim.pod(NS, &name).is_none(), "the pod is gone");
    assert_eq!(log_lines(&e.store, id).await, ["started"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_pods_and_token_secrets_are_garbage_collected() {
    let sc = SchedulerConfig {
        worker_retention: Duration::ZERO,
        gc_interval: Duration::from_millis(50),
        ..sched_config()
    };
    let mut e = env_with(SimConfig::default(), sc).await;
    let id = submit(&e.store, spec("gc me")).await;
    let t = run_to_end(&mut e.sched, &e.store, id, Duration::from_secs(10)).await;
    assert_eq!(t.status, TaskStatus::Succeeded);
    let sim = e.sim.clone();
    tick_until(&mut e.sched, Duration::from_secs(10), || {
        sim.pods(NS).is_empty() && sim.secrets(NS).len() == 1
    })
    .await;
    assert!(
        e.sim.secret(NS, "claude-worker-secrets").is_some(),
        "the shared secret is never touched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_orchestrator_adopts_running_pods_without_duplicating_logs() {
    let mut e = env().await;
    let running = submit(&e.store, spec("long")).await;
    let finishing = submit(&e.store, spec("short")).await;
    let vanishing = submit(&e.store, spec("lost")).await;
    let steps = |pre: &str, ms: u64| {
        Behaviour::Script(vec![
            Step::Log(format!("{pre}-1")),
            Step::Log(format!("{pre}-2")),
            Step::Sleep(Duration::from_millis(ms)),
            Step::Log(format!("{pre}-3")),
            Step::Log(format!("{pre}-4")),
            Step::Exit(0),
        ])
    };
    e.sim.set_behaviour(&pod_name(running), steps("r", 1500));
    e.sim.set_behaviour(&pod_name(finishing), steps("f", 300));
    e.sim
        .set_behaviour(&pod_name(vanishing), Behaviour::forever());
    let store = e.store.clone();
    tick_until_logged(&mut e.sched, &store, running, 2).await;
    tick_until_logged(&mut e.sched, &store, finishing, 2).await;
    assert_eq!(log_lines(&store, running).await, ["r-1", "r-2"]);
    // The orchestrator goes away; pods keep running; one is deleted meanwhile.
    let Env {
        sim,
        store,
        runtime,
        sched,
        _dir,
    } = e;
    drop(sched);
    drop(runtime);
    sim.delete_pod(NS, &pod_name(vanishing), 0);
    // While nobody watches, one pod finishes and the deleted one goes.
    let (f, v) = (pod_name(finishing), pod_name(vanishing));
    sim_until(&sim, Duration::from_secs(10), |s| {
        phase(s, &f).as_deref() == Some("Succeeded") && s.pod(NS, &v).is_none()
    })
    .await;

    let (_rt, mut sched) = orchestrator(&sim, store.clone(), sched_config()).await;
    assert_eq!(sched.recover().await.unwrap(), 3);
    let f = store.get(finishing).await.unwrap().unwrap();
    assert_eq!(
        f.status,
        TaskStatus::Succeeded,
        "finished while down → settled at recovery"
    );
    assert_eq!(
        log_lines(&store, finishing).await,
        ["f-1", "f-2", "f-3", "f-4"]
    );
    let v = store.get(vanishing).await.unwrap().unwrap();
    assert_eq!(
        (v.status, v.reason),
        (TaskStatus::Failed, Reason::WorkerLost)
    );
    let r = run_to_end(&mut sched, &store, running, Duration::from_secs(10)).await;
    assert_eq!(r.status, TaskStatus::Succeeded);
    assert_eq!(
        log_lines(&store, running).await,
        ["r-1", "r-2", "r-3", "r-4"]
    );
    let creates = sim
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/pods"))
        .count();
    assert_eq!(creates, 3, "no pod was created twice");
}
