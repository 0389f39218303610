//! Recovery after a restart: a task that can't be settled is set aside, retried with backoff,
//! and never holds up the others.

use std::time::Duration;

use ao_core::{Reason, TaskStatus};

use crate::harness::{AfterRestart, Harness};

#[tokio::test]
async fn a_task_recovery_cannot_settle_is_set_aside_and_the_rest_run() {
    let mut h = Harness::new().await;
    let mut s = h.scheduler(2);
    let stuck = h.submit(60).await;
    let alive = h.submit(60).await;
    let queued = h.submit(60).await;
    assert_eq!(s.tick().await.unwrap().launched, vec![stuck, alive]);
    drop(s);

    h.fake.after_restart(stuck, AfterRestart::Fails);
    h.fake.after_restart(alive, AfterRestart::Alive);
    let mut s = h.scheduler(2);
    assert_eq!(
        s.recover().await.unwrap(),
        2,
        "recovery goes on past the failure"
    );
    assert_eq!(h.status(alive).await.0, TaskStatus::Running);
    let aside = s.handle().set_aside();
    assert_eq!(aside.len(), 1);
    assert_eq!((aside[0].task_id, aside[0].attempts), (stuck, 1));
    assert!(aside[0].reason.contains("runtime api down"), "{aside:?}");
    assert_eq!(h.set_aside_gauge(), 1);
    // The set-aside task takes no slot: the queued one runs beside the adopted one.
    assert_eq!(s.tick().await.unwrap().launched, vec![queued]);

    // The runtime answers again; the retry waits for its backoff (1 s), then settles it.
    h.fake.after_restart(stuck, AfterRestart::Alive);
    h.clock.advance(Duration::from_millis(999));
    assert!(s.tick().await.unwrap().recovered.is_empty(), "backing off");
    h.clock.advance(Duration::from_millis(1));
    assert_eq!(s.tick().await.unwrap().recovered, vec![stuck]);
    assert!(s.handle().set_aside().is_empty());
    assert_eq!(h.set_aside_gauge(), 0);
    assert_eq!(s.active_count(), 3);
    h.exit(stuck, 0);
    assert_eq!(s.tick().await.unwrap().finished, vec![stuck]);
    assert_eq!(
        h.status(stuck).await,
        (TaskStatus::Succeeded, Reason::Completed)
    );
}

#[tokio::test]
async fn a_set_aside_task_is_retried_with_growing_backoff_and_dropped_once_settled() {
    let mut h = Harness::new().await;
    let mut s = h.scheduler(1);
    let stuck = h.submit(60).await;
    s.tick().await.unwrap();
    drop(s);
    h.fake.after_restart(stuck, AfterRestart::Fails);
    let mut s = h.scheduler(1);
    s.recover().await.unwrap();
    for (wait_ms, attempts) in [(1000, 2), (2000, 3), (4000, 4)] {
        h.clock.advance(Duration::from_millis(wait_ms - 1));
        s.tick().await.unwrap();
        assert_eq!(s.handle().set_aside()[0].attempts, attempts - 1);
        h.clock.advance(Duration::from_millis(1));
        s.tick().await.unwrap();
        assert_eq!(s.handle().set_aside()[0].attempts, attempts);
    }
    // Settled elsewhere meanwhile (here: its exit event): the next retry lets it go.
    h.exit(stuck, 3);
    s.tick().await.unwrap();
    assert_eq!(h.status(stuck).await.0, TaskStatus::Failed);
    h.clock.advance(Duration::from_secs(8));
    assert_eq!(s.tick().await.unwrap().recovered, vec![stuck]);
    assert_eq!(h.set_aside_gauge(), 0);
}
