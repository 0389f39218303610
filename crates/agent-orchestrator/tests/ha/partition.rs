//! A leader cut off from the database (its connections frozen, not closed) stops scheduling
//! on its own before its lease can lapse; the other replica takes over only after the lapse,
//! runs the new tasks once, and the old leader, reconnected, stays a follower.

use std::time::Duration;

use ao_kube_sim::Behaviour;
use chrono::Utc;

use crate::cluster::Cluster;
use crate::proxy::{Proxy, target, via};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_leader_steps_down_before_its_lease_lapses() {
    let db = ao_testkit::postgres::fresh_database().await;
    let mut c = Cluster::new(db.url(), Behaviour::exit(0, Duration::from_millis(100))).await;
    let proxy = Proxy::start(target(db.url())).await;
    let a = c.start_on(&via(db.url(), proxy.addr));
    assert_eq!(c.leader(&[&a]).await, 0);
    let b = c.start();
    assert_eq!(
        c.leader(&[&a, &b]).await,
        0,
        "the first replica keeps the lease"
    );
    let before = c.submit(&b, "before the partition").await;
    c.wait_all(&b, std::slice::from_ref(&before), Duration::from_secs(30))
        .await;

    proxy.freeze();
    let frozen = Utc::now();
    // Only `b` is asked: `a`'s own readiness would wait on its frozen database.
    for _ in 0..400 {
        if c.leads(&b).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(c.leads(&b).await, "the other replica took over");
    let down = a.logged("steps down").into_iter().find(|t| *t > frozen);
    let down = down.expect("the cut-off leader logged its step-down");
    let up = b
        .logged("this replica now leads")
        .into_iter()
        .find(|t| *t > frozen)
        .unwrap();
    let lease = chrono::Duration::seconds(i64::try_from(c.lease_seconds).unwrap());
    assert!(
        down < up,
        "it stopped leading ({down}) before the next began ({up})"
    );
    assert!(
        down - frozen < lease,
        "it stepped down within its lease: {:?}",
        down - frozen
    );
    eprintln!(
        "partition: step-down after {:?}, takeover after {:?}",
        down - frozen,
        up - frozen
    );

    let mut during = Vec::new();
    for i in 0..5 {
        during.push(c.submit(&b, &format!("during {i}")).await);
    }
    c.wait_all(&b, &during, Duration::from_secs(30)).await;

    proxy.thaw();
    let mut ready = false;
    for _ in 0..400 {
        if let Some(v) = c.readyz(&a).await {
            assert_eq!(
                v["scheduler"]["leads"], false,
                "the old leader follows: {v}"
            );
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "the old leader answers again after the thaw");
    let after = c.submit(&a, "after the thaw").await;
    c.wait_all(&a, &[after], Duration::from_secs(30)).await;
    assert!(c.leads(&b).await && !c.leads(&a).await);
    assert_eq!(c.duplicate_pods(), vec![]);
}
