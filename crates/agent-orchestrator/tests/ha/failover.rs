//! Failover under load: 300 tasks submitted round-robin to 3 replicas with a concurrency
//! limit that keeps a queue, and the leader killed with SIGKILL twice during the run (each
//! time restarted as a new process, so three replicas stay). Nothing may be lost, stuck,
//! launched twice or end in the wrong state.

use std::collections::HashSet;
use std::time::Duration;

use ao_kube_sim::Behaviour;
use chrono::{DateTime, Utc};

use crate::cluster::{Cluster, Replica, pod_of};

const TASKS: usize = 300;

/// The exit code each task's pod is told to end with: every seventh fails.
fn exit_code(i: usize) -> i32 {
    if i % 7 == 3 { 3 } else { 0 }
}

/// When a replica other than the killed one logged that it now leads, after `killed`.
fn took_over(rs: &[&Replica], killed: DateTime<Utc>) -> Option<DateTime<Utc>> {
    rs.iter()
        .flat_map(|r| r.logged("this replica now leads"))
        .filter(|t| *t > killed)
        .min()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_the_leader_twice_under_load_loses_and_duplicates_nothing() {
    let db = ao_testkit::postgres::fresh_database().await;
    let mut c = Cluster::new(db.url(), Behaviour::exit(0, Duration::from_millis(150))).await;
    let mut rs = vec![c.start(), c.start(), c.start()];
    let mut ids = Vec::with_capacity(TASKS);
    let mut failovers = Vec::new();
    for i in 0..TASKS {
        let r = &rs[i % rs.len()];
        let id = c.submit(r, &format!("task {i}")).await;
        if exit_code(i) != 0 {
            c.sim.set_behaviour(
                &pod_of(&id),
                Behaviour::exit(exit_code(i), Duration::from_millis(150)),
            );
        }
        ids.push(id);
        // Kill the leader at a third and at two thirds of the submissions.
        if i == TASKS / 3 || i == 2 * TASKS / 3 {
            let refs: Vec<&Replica> = rs.iter().collect();
            let leader = c.leader(&refs).await;
            let killed = rs.remove(leader).kill9();
            let others: Vec<&Replica> = rs.iter().collect();
            let new = c.leader(&others).await;
            let at = took_over(&others, killed).expect("the new leader logged its term");
            failovers.push((at - killed).to_std().unwrap());
            eprintln!(
                "failover {}: replica {new} leads after {:?}",
                failovers.len(),
                failovers.last()
            );
            rs.push(c.start());
        }
    }
    let tasks = c.wait_all(&rs[0], &ids, Duration::from_secs(240)).await;

    // 0 lost: every accepted task is there, through every replica.
    let want: HashSet<&str> = ids.iter().map(String::as_str).collect();
    for r in &rs {
        let listed = c.list_all(r, None).await;
        let seen: HashSet<&str> = listed.iter().filter_map(|t| t["id"].as_str()).collect();
        assert_eq!(seen, want, "{} lists every task", r.base);
    }
    // Every task ended as its pod did.
    for (i, t) in tasks.iter().enumerate() {
        let want = if exit_code(i) == 0 {
            ("succeeded", "completed".to_string())
        } else {
            ("failed", format!("exit_code_{}", exit_code(i)))
        };
        assert_eq!(
            (
                t["status"].as_str().unwrap(),
                t["reason"].as_str().unwrap().to_string()
            ),
            (want.0, want.1),
            "{t:#}"
        );
    }
    // 0 duplicate workers: the simulator created each task's pod exactly once.
    assert_eq!(c.duplicate_pods(), vec![], "no pod was created twice");
    let created = c.sim.pods_created(crate::cluster::NAMESPACE);
    for id in &ids {
        assert_eq!(created.get(&pod_of(id)), Some(&1), "task {id} had one pod");
    }
    // 0 stuck: nothing is left queued, starting or running.
    for status in ["queued", "starting", "running"] {
        assert_eq!(c.list_all(&rs[0], Some(status)).await.len(), 0, "{status}");
    }
    for f in &failovers {
        assert!(
            *f <= Duration::from_secs(c.lease_seconds * 2 + 2),
            "failover took {f:?}"
        );
    }
    eprintln!(
        "failover times (lease {} s): {failovers:?}",
        c.lease_seconds
    );
}
