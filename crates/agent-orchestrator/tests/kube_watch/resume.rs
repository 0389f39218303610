//! 6a. The pod watch resumes from its resourceVersion after its connection is cut: the
//! orchestrator talks to the API server through the test's proxy, the proxy cuts every
//! connection while the pods run, and the audit log shows the next pod request of the
//! orchestrator is a watch from a later resourceVersion than its first (the last event it
//! saw), with no new list. Then every task ends right, its end seen through the resumed watch.

use std::time::Instant;

use crate::audit::{Ev, Log};
use crate::proxy::CutProxy;
use crate::world::World;

const TASKS: usize = 3;

/// The first watch of pods by `user` in `ns` that the log shows starting, and its
/// `resourceVersion`.
pub fn watch_start(evs: &[Ev], user: &str, ns: &str, skip: &[String]) -> Option<(Ev, u64)> {
    evs.iter()
        .filter(|e| e.on_pods_by(user, ns) && e.verb == "watch" && !skip.contains(&e.audit_id))
        .find_map(|e| {
            let rv = e.param("resourceVersion")?.parse().ok()?;
            Some((e.clone(), rv))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pod_watch_resumes_from_its_resource_version_after_the_connection_is_cut() {
    let t0 = Instant::now();
    let w = World::new("ao-watch-resume", TASKS).await;
    let log = Log::from_now(&w.env.audit_log);
    let proxy = CutProxy::start(&w.env.server).await;
    let orch = w.orchestrator(&proxy.url(), TASKS).await;
    let user = w.sa_user();
    let (first, first_rv) = log
        .wait_for("the orchestrator's first pod watch", 60, |evs| {
            watch_start(evs, &user, &w.ns, &[])
        })
        .await;
    let mut ids = Vec::new();
    for i in 0..TASKS {
        ids.push(orch.submit(&format!("watch resume task {i}")).await);
    }
    w.wait_for_agents(TASKS).await;

    let before_cut = log.events();
    let seen: Vec<String> = before_cut.iter().map(|e| e.audit_id.clone()).collect();
    let after = log.mark();
    let cut = proxy.cut();
    assert!(
        cut >= 1,
        "no connection to cut: the orchestrator does not use the proxy"
    );
    let (resumed, resumed_rv) = after
        .wait_for("the orchestrator's pod watch after the cut", 60, |evs| {
            watch_start(evs, &user, &w.ns, &seen)
        })
        .await;
    w.open_gate();
    orch.assert_all_answered(&ids, 120).await;
    // The cut broke the log streams too: each was resumed, no line stored twice or lost.
    for id in &ids {
        let seqs = orch.log_seqs(id).await;
        assert!(
            !seqs.is_empty() && seqs == (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "task {id}: worker event lines in the stored log: {seqs:?}"
        );
    }

    // Resumed, not relisted: a later version than the first watch's (the list's), and no
    // list of pods by the orchestrator after the cut.
    assert!(
        resumed_rv > first_rv,
        "the watch after the cut starts at {resumed_rv}, not after {first_rv}: {}\nfirst: {}",
        resumed.uri,
        first.uri
    );
    let evs = after.events();
    let lists: Vec<String> = evs
        .iter()
        .filter(|e| e.on_pods_by(&user, &w.ns) && e.verb == "list")
        .map(Ev::short)
        .collect();
    assert!(
        lists.is_empty(),
        "the orchestrator relisted after the cut: {lists:#?}"
    );
    let watches = evs
        .iter()
        .filter(|e| e.on_pods_by(&user, &w.ns) && e.verb == "watch" && e.stage == "ResponseStarted")
        .count();
    eprintln!(
        "figures(resume): connections cut {cut}; first watch resourceVersion={first_rv}, resumed at \
         {resumed_rv} ({}); watches started after the cut {watches}; lists after the cut 0; \
         {TASKS} tasks answered; test time {:.1} s",
        resumed.uri,
        t0.elapsed().as_secs_f64()
    );
}
