//! Refused launches and what else happens meanwhile: time a refused task spends waiting for
//! a free slot is not counted towards its launch deadline, and a cancel during a launch that
//! ends refused cancels the task instead of putting it back in the queue.

use std::time::Duration;

use ao_core::TaskStatus;
use ao_core::scheduler::SchedulerConfig;
use ao_core::store::TaskStore;

use crate::harness::Harness;

/// A task refused once, then kept waiting by the concurrency limit (not by refusals) for
/// longer than the launch deadline, must not fail on its next single refusal.
#[tokio::test]
async fn time_spent_waiting_for_a_slot_does_not_count_towards_the_launch_deadline() {
    let mut h = Harness::new().await;
    let mut s = h.scheduler_cfg(SchedulerConfig {
        max_concurrency: 2,
        launch_deadline: Duration::from_secs(30),
        ..Harness::config()
    });
    let (a, b, c) = (
        h.submit(3600).await,
        h.submit(3600).await,
        h.submit(3600).await,
    );
    h.fake.refuse.lock().unwrap().push(a);
    let r = s.tick().await.unwrap();
    assert_eq!((r.requeued, r.launched), (vec![a], vec![b]));
    // a backs off; c takes the last slot.
    assert_eq!(s.tick().await.unwrap().launched, [c]);
    // Both slots stay busy for 10 minutes: a is never tried meanwhile.
    h.clock.advance(Duration::from_secs(600));
    assert!(s.tick().await.unwrap().launched.is_empty());
    assert_eq!(h.fake.attempts.lock().unwrap().len(), 3);
    // A slot frees; a's first retry meets one more 429.
    h.exit(b, 0);
    s.tick().await.unwrap();
    assert_eq!(
        h.fake.attempts.lock().unwrap().len(),
        4,
        "a was tried again"
    );
    assert_eq!(
        h.status(a).await.0,
        TaskStatus::Queued,
        "a failed after only two attempts: {:?}",
        h.task(a).await.message
    );
}

/// A task cancelled while its launch is in flight, whose launch then ends throttled, is
/// cancelled, not put back in the queue and launched again.
#[tokio::test]
async fn a_cancel_during_a_launch_that_ends_throttled_is_not_requeued() {
    let mut h = Harness::new().await;
    let mut s = h.scheduler_with(4, 4);
    let a = h.submit(600).await;
    h.fake.hold_launch_of.lock().unwrap().push(a);
    {
        let tick = s.tick();
        tokio::pin!(tick);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while h.fake.launched.lock().unwrap().is_empty() {
            tokio::select! {
                _ = &mut tick => panic!("the step returned early"),
                () = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
            assert!(tokio::time::Instant::now() < deadline);
        }
        let t = h.store.request_cancel(a).await.unwrap();
        assert!(t.cancel_requested && t.status == TaskStatus::Starting);
        h.fake.refuse.lock().unwrap().push(a);
        h.fake.release.notify_waiters();
        let r = tick.await.unwrap();
        assert!(r.requeued.is_empty(), "requeued: {:?}", r.requeued);
    }
    let t = h.task(a).await;
    h.fake.refuse.lock().unwrap().clear();
    h.fake.hold_launch_of.lock().unwrap().clear();
    h.clock.advance(Duration::from_secs(3));
    s.tick().await.unwrap();
    assert_ne!(
        h.fake.attempts.lock().unwrap().len(),
        2,
        "the cancelled task was launched again"
    );
    assert_eq!(t.status, TaskStatus::Cancelled);
}
