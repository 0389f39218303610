//! The API misbehaving: watches cut and resumed, `410 Gone` forcing a relist, 5xx/429
//! answers and an unreachable server. No task is lost and no transition is missed.

use std::time::Duration;

use ao_core::lifecycle::TaskStatus;
use ao_core::store::TaskStore;
use ao_kube_sim::{Behaviour, Step};

use crate::common::*;

fn slow(lines: &[&str], ms: u64) -> Behaviour {
    let mut s = vec![Step::Sleep(Duration::from_millis(ms))];
    s.extend(lines.iter().map(|l| Step::Log(l.to_string())));
    s.push(Step::Sleep(Duration::from_millis(ms)));
    s.push(Step::Exit(0));
    Behaviour::Script(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_watches_resume_without_losing_a_transition() {
    let mut e = env().await;
    // Every watch stream ends after one event: each transition arrives on a resumed watch.
    e.sim.faults().cut_watch_after = Some(1);
    // Once the runtime's first watch is open, cut it.
    sim_until(&e.sim, Duration::from_secs(5), |s| {
        s.requests().iter().any(|r| r.is_watch())
    })
    .await;
    e.sim.cut_watches();
    let ids = [
        submit(&e.store, spec("a")).await,
        submit(&e.store, spec("b")).await,
    ];
    for id in ids {
        e.sim.set_behaviour(&pod_name(id), slow(&["x", "y"], 150));
    }
    for id in ids {
        let t = run_to_end(&mut e.sched, &e.store, id, Duration::from_secs(15)).await;
        assert_eq!(t.status, TaskStatus::Succeeded);
        assert_eq!(log_lines(&e.store, id).await, ["x", "y"]);
    }
    let reqs = e.sim.requests();
    let resumed = reqs
        .iter()
        .filter(|r| r.is_watch() && !r.query.contains("resourceVersion=0"))
        .count();
    let lists = reqs
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/pods") && !r.is_watch())
        .count();
    assert!(
        resumed >= 4,
        "watches resumed from their version: {resumed}"
    );
    assert_eq!(lists, 1, "cuts resume; they do not relist");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_on_resume_relists_and_misses_nothing() {
    let mut e = env().await;
    let id = submit(&e.store, spec("a")).await;
    e.sim.set_behaviour(&pod_name(id), slow(&["x"], 400));
    let (sim, name) = (e.sim.clone(), pod_name(id));
    tick_until(&mut e.sched, Duration::from_secs(5), || {
        sim.pod(NS, &name).is_some()
    })
    .await;
    // The watch is cut and its resume gets 410 (history compacted): the watcher relists.
    e.sim.faults().gone_next_watches = 1;
    e.sim.cut_watches();
    let t = run_to_end(&mut e.sched, &e.store, id, Duration::from_secs(15)).await;
    assert_eq!(t.status, TaskStatus::Succeeded);
    let lists = e
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/pods") && !r.is_watch())
        .count();
    assert!(lists >= 2, "relisted after 410: {lists} lists");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_deleted_while_the_watch_was_down_is_noticed_after_relist() {
    let mut e = env().await;
    let id = submit(&e.store, spec("a")).await;
    e.sim.set_behaviour(&pod_name(id), Behaviour::forever());
    let (sim, name) = (e.sim.clone(), pod_name(id));
    tick_until(&mut e.sched, Duration::from_secs(5), || {
        sim.pod(NS, &name).is_some()
    })
    .await;
    // The runtime has the running pod in its cache (it is followed).
    let rt = e.runtime.clone();
    tick_until(&mut e.sched, Duration::from_secs(5), || {
        rt.cached_pods() == 1
    })
    .await;
    let watches = |s: &ao_kube_sim::Sim| s.requests().iter().filter(|r| r.is_watch()).count();
    let before = watches(&e.sim);
    e.sim.faults().gone_next_watches = 1_000;
    e.sim.cut_watches();
    e.sim.delete_pod(NS, &name, 0);
    e.sim.compact();
    // A resume was tried (and refused with 410) while the pod was gone.
    sim_until(&e.sim, Duration::from_secs(10), |s| watches(s) > before).await;
    e.sim.faults().gone_next_watches = 0;
    let t = run_to_end(&mut e.sched, &e.store, id, Duration::from_secs(20)).await;
    assert_eq!(
        (t.status, t.reason),
        (TaskStatus::Failed, ao_core::lifecycle::Reason::WorkerLost)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_5xx_and_429_are_retried() {
    let mut e = env().await;
    let id = submit(&e.store, spec("a")).await;
    e.sim.faults().fail_next.extend([503, 429]);
    let t = run_to_end(&mut e.sched, &e.store, id, Duration::from_secs(10)).await;
    assert_eq!(t.status, TaskStatus::Succeeded);
    // Random failures on a fifth of all requests, reproducibly.
    e.sim.faults().fail_randomly(0.2, 500, 42);
    let ids: Vec<_> =
        futures::future::join_all((0..4).map(|i| submit(&e.store, spec(&format!("t{i}"))))).await;
    for id in ids {
        let t = run_to_end(&mut e.sched, &e.store, id, Duration::from_secs(30)).await;
        assert_eq!(t.status, TaskStatus::Succeeded, "{:?}", t.message);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_loses_no_task() {
    let mut e = env().await;
    e.sim.faults().unreachable = true;
    let ids: Vec<_> =
        futures::future::join_all((0..3).map(|i| submit(&e.store, spec(&format!("t{i}"))))).await;
    for _ in 0..10 {
        let report = e.sched.tick().await.unwrap();
        assert!(report.launched.is_empty());
    }
    for id in &ids {
        let t = e.store.get(*id).await.unwrap().unwrap();
        assert_eq!(t.status, TaskStatus::Queued, "requeued, not failed");
    }
    let tried = e.store.get(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        tried.reason,
        ao_core::lifecycle::Reason::Requeued,
        "a launch was tried and requeued"
    );
    e.sim.faults().unreachable = false;
    for id in ids {
        let t = run_to_end(&mut e.sched, &e.store, id, Duration::from_secs(30)).await;
        assert_eq!(t.status, TaskStatus::Succeeded);
        let creates = e
            .sim
            .requests()
            .iter()
            .filter(|r| {
                r.method == "POST"
                    && r.body.windows(36).any(|w| w == id.to_string().as_bytes())
                    && r.path.ends_with("/pods")
            })
            .count();
        assert_eq!(creates, 1);
    }
}

/// A create throttled through the client's retries ends the launch at once as
/// `Throttled`: the task goes back to the queue, the token Secret is left for the next
/// launch to replace (no throttled delete holds the launch up), and the task then succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_throttled_through_its_retries_is_requeued_then_succeeds() {
    let mut e = env().await;
    let id = submit(&e.store, spec("a")).await;
    // The client's own 2 retries, then the launch goes back: 3 answers of 429.
    e.sim.faults().fail_next.extend([429; 3]);
    let report = e.sched.tick().await.unwrap();
    assert_eq!(report.requeued, [id]);
    let t = e.store.get(id).await.unwrap().unwrap();
    assert_eq!(t.status, TaskStatus::Queued);
    let msg = t.message.unwrap_or_default();
    assert!(msg.contains("throttled"), "{msg}");
    let deletes = e
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == "DELETE")
        .count();
    assert_eq!(deletes, 0, "nothing was deleted after the throttled create");
    let t = run_to_end(&mut e.sched, &e.store, id, Duration::from_secs(20)).await;
    assert_eq!(t.status, TaskStatus::Succeeded, "{:?}", t.message);
}

#[tokio::test]
async fn the_token_secret_of_a_refused_pod_create_is_deleted_by_uid_in_the_background() {
    let mut e = env().await;
    let id = submit(&e.store, spec("a")).await;
    // The Secret is created; the pod create is throttled through the client's retries.
    e.sim
        .faults()
        .fail_next_of
        .extend((0..3).map(|_| ("POST".into(), "/pods".into(), 429)));
    let report = e.sched.tick().await.unwrap();
    assert_eq!(report.requeued, [id]);
    // The delete runs in the background, with the created Secret's uid as precondition.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let delete = loop {
        let found = e.sim.requests().into_iter().find(|r| {
            r.method == "DELETE"
                && r.path.ends_with(&format!(
                    "/secrets/{}",
                    ao_runtime_kube::pod::token_secret_name(id)
                ))
        });
        if let Some(r) = found {
            break r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the token Secret was never deleted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let body: serde_json::Value = serde_json::from_slice(&delete.body).unwrap();
    assert!(
        body["preconditions"]["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty()),
        "{body}"
    );
    let t = run_to_end(&mut e.sched, &e.store, id, Duration::from_secs(20)).await;
    assert_eq!(t.status, TaskStatus::Succeeded, "{:?}", t.message);
}
