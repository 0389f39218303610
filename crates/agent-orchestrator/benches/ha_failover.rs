//! Failover time with replicas on PostgreSQL: three `serve` processes (Kubernetes runtime on
//! the simulator) share a fresh database; the leader is killed with SIGKILL again and again
//! (and replaced), and each time the bench measures, from the kill, when another replica
//! logged that it leads and when its recovery finished (it schedules from then on). p50 and
//! max over the kills.
//!
//! Needs `AO_TEST_DATABASE_URL` (`scripts/postgres-test.sh start`). Sizes: `BENCH_KILLS`
//! (10), `BENCH_LEASE_SECONDS` (10, the default lease). Without `--bench` (`cargo test
//! --all-targets`) it runs a smoke configuration: 2 kills with a 2 s lease.
//!
//! Run: `cargo bench -p agent-orchestrator --bench ha_failover`.

#[path = "../tests/ha/cluster.rs"]
#[allow(dead_code)]
mod cluster;

use std::time::Duration;

use ao_kube_sim::Behaviour;
use chrono::{DateTime, Utc};

use cluster::{Cluster, Replica};

/// Every terminal status (the cluster helpers read it).
pub const TERMINAL: &[&str] = &["succeeded", "failed", "cancelled", "timed_out"];

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn first_after(rs: &[&Replica], text: &str, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    rs.iter()
        .flat_map(|r| r.logged(text))
        .filter(|x| *x > t)
        .min()
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let kills = if bench { env_or("BENCH_KILLS", 10) } else { 2 };
    let lease = if bench {
        env_or("BENCH_LEASE_SECONDS", 10)
    } else {
        2
    };
    let db = ao_testkit::postgres::fresh_database().await;
    let mut c = Cluster::new(db.url(), Behaviour::exit(0, Duration::from_millis(100))).await;
    c.lease_seconds = lease;
    let mut rs = vec![c.start(), c.start(), c.start()];
    let (mut takeover, mut recovered) = (Vec::new(), Vec::new());
    for k in 0..kills {
        let refs: Vec<&Replica> = rs.iter().collect();
        let leader = c.leader(&refs).await;
        // Let a renewal or two pass, so kills land anywhere in the renewal period.
        tokio::time::sleep(Duration::from_millis(300 + 137 * k)).await;
        let killed = rs.remove(leader).kill9();
        let others: Vec<&Replica> = rs.iter().collect();
        c.leader(&others).await;
        let mut done = None;
        for _ in 0..200 {
            done = first_after(&others, "scheduler recovered state", killed);
            if done.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let up = first_after(&others, "this replica now leads", killed).expect("a new term");
        takeover.push((up - killed).to_std().unwrap());
        recovered.push(
            (done.expect("recovery finished") - killed)
                .to_std()
                .unwrap(),
        );
        rs.push(c.start());
        // The task admitted after the failover runs: the new leader schedules.
        let id = c.submit(&rs[0], "after a failover").await;
        c.wait_all(&rs[0], &[id], Duration::from_secs(60)).await;
    }
    takeover.sort();
    recovered.sort();
    println!("failover with a {lease} s lease over {kills} SIGKILLs of the leader:");
    println!(
        "  takeover (kill -> another replica leads): p50 {:?}, max {:?}",
        pct(&takeover, 0.5),
        pct(&takeover, 1.0)
    );
    println!(
        "  recovered (kill -> new leader schedules): p50 {:?}, max {:?}",
        pct(&recovered, 0.5),
        pct(&recovered, 1.0)
    );
    println!(
        "  ratio of max takeover to the lease: {:.2}",
        pct(&takeover, 1.0).as_secs_f64() / lease as f64
    );
    assert!(
        pct(&recovered, 1.0) <= Duration::from_secs(lease * 3 / 2 + 1),
        "failover within 1.5 x the lease"
    );
}
