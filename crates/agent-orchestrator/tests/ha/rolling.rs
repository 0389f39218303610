//! A rolling restart: each replica in turn gets SIGTERM (it releases the lease if it leads,
//! so the next takes over at once) and is replaced by a new process, while tasks keep
//! arriving through the replicas that are up. Nothing is lost, nothing runs twice.

use std::collections::HashSet;
use std::time::Duration;

use ao_kube_sim::Behaviour;

use crate::cluster::{Cluster, pod_of};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarting_every_replica_one_by_one_loses_and_duplicates_nothing() {
    let db = ao_testkit::postgres::fresh_database().await;
    let mut c = Cluster::new(db.url(), Behaviour::exit(0, Duration::from_millis(300))).await;
    c.max_concurrency = 4;
    let mut rs = vec![c.start(), c.start(), c.start()];
    let mut ids = Vec::new();
    for round in 0..3 {
        for i in 0..30 {
            let r = &rs[i % rs.len()];
            ids.push(c.submit(r, &format!("round {round} task {i}")).await);
        }
        // Replace the oldest replica (the leader first time round, since it started first).
        let old = rs.remove(0);
        let was_leader = c.leads(&old).await;
        old.terminate();
        rs.push(c.start());
        let refs: Vec<_> = rs.iter().collect();
        let leader = c.leader(&refs).await;
        eprintln!(
            "round {round}: replaced a {} replica; replica {leader} leads",
            if was_leader { "leading" } else { "following" }
        );
        for r in &rs {
            let lease_released = r.logged("lease released");
            assert!(lease_released.is_empty(), "a live replica released nothing");
        }
    }
    let tasks = c.wait_all(&rs[0], &ids, Duration::from_secs(180)).await;
    let statuses: HashSet<&str> = tasks
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        HashSet::from(["succeeded"]),
        "every task succeeded"
    );
    assert_eq!(c.list_all(&rs[1], None).await.len(), ids.len(), "0 lost");
    let created = c.sim.pods_created(crate::cluster::NAMESPACE);
    for id in &ids {
        assert_eq!(created.get(&pod_of(id)), Some(&1), "task {id} had one pod");
    }
}
