//! The scheduler driven one step at a time, against a fake runtime and a real store, with a
//! manual clock (see `harness.rs`).

mod harness;
mod launch;
mod recovery;
mod refused;
mod throttle;

use std::time::Duration;

use ao_core::store::TaskStore;
use ao_core::{Reason, TaskStatus};
use harness::{AfterRestart, Harness};

#[tokio::test]
async fn steps_admit_fifo_under_the_limit_and_finish_on_exit() {
    let mut h = Harness::new().await;
    let mut s = h.scheduler(2);
    let ids = [h.submit(60).await, h.submit(60).await, h.submit(60).await];
    let r = s.tick().await.unwrap();
    assert_eq!(r.launched, ids[..2]);
    assert_eq!(h.status(ids[2]).await.0, TaskStatus::Queued);
    assert!(
        s.tick().await.unwrap().launched.is_empty(),
        "the limit holds"
    );
    h.exit(ids[0], 0);
    h.exit(ids[1], 4);
    let r = s.tick().await.unwrap();
    assert_eq!(r.finished, ids[..2]);
    assert_eq!(r.launched, ids[2..]);
    assert_eq!(
        h.status(ids[0]).await,
        (TaskStatus::Succeeded, Reason::Completed)
    );
    assert_eq!(
        h.status(ids[1]).await,
        (TaskStatus::Failed, Reason::ExitCode(4))
    );
}

#[tokio::test]
async fn cancel_and_deadline_stop_the_worker_then_settle() {
    let mut h = Harness::new().await;
    let mut s = h.scheduler(4);
    let cancel = h.submit(60).await;
    let slow = h.submit(1).await;
    s.tick().await.unwrap();
    h.store.request_cancel(cancel).await.unwrap();
    let r = s.tick().await.unwrap();
    assert_eq!(r.stopping, vec![cancel]);
    h.exit(cancel, 143);
    s.tick().await.unwrap();
    assert_eq!(
        h.status(cancel).await,
        (TaskStatus::Cancelled, Reason::CancelledByUser)
    );
    h.clock.advance(Duration::from_millis(900));
    assert!(s.tick().await.unwrap().stopping.is_empty(), "not due yet");
    h.clock.advance(Duration::from_millis(200));
    let r = s.tick().await.unwrap();
    assert_eq!(r.stopping, vec![slow]);
    // The worker never reports its exit: after grace + stop timeout it is settled anyway.
    h.clock.advance(Duration::from_millis(250));
    assert!(
        s.tick().await.unwrap().finished.is_empty(),
        "still in grace"
    );
    h.clock.advance(Duration::from_millis(100));
    let r = s.tick().await.unwrap();
    assert_eq!(r.finished, vec![slow]);
    assert_eq!(
        h.status(slow).await,
        (TaskStatus::TimedOut, Reason::DeadlineExceeded)
    );
    assert_eq!(*h.fake.stopped.lock().unwrap(), vec![cancel, slow]);
}

#[tokio::test]
async fn unavailable_runtime_requeues_without_losing_tasks() {
    let mut h = Harness::new().await;
    let mut s = h.scheduler(4);
    let id = h.submit(60).await;
    *h.fake.unavailable.lock().unwrap() = true;
    let r = s.tick().await.unwrap();
    assert_eq!(r.requeued, vec![id]);
    assert_eq!(h.status(id).await, (TaskStatus::Queued, Reason::Requeued));
    // The task's own backoff first (1 s, jittered to at most 2 s; then doubling), then it runs.
    h.clock.advance(Duration::from_millis(999));
    assert!(s.tick().await.unwrap().requeued.is_empty(), "backing off");
    h.clock.advance(Duration::from_millis(1_001));
    assert_eq!(s.tick().await.unwrap().requeued, vec![id]);
    *h.fake.unavailable.lock().unwrap() = false;
    h.clock.advance(Duration::from_millis(1_999));
    assert!(
        s.tick().await.unwrap().launched.is_empty(),
        "the backoff doubled"
    );
    h.clock.advance(Duration::from_millis(2_001));
    assert_eq!(s.tick().await.unwrap().launched, vec![id]);
}

#[tokio::test]
async fn recovery_adopts_live_workers_and_settles_the_rest() {
    let mut h = Harness::new().await;
    let mut s = h.scheduler(4);
    let alive = h.submit(60).await;
    let gone = h.submit(60).await;
    s.tick().await.unwrap();
    let never_started = h.submit(60).await;
    h.store
        .transition(
            never_started,
            TaskStatus::Queued,
            ao_core::store::Transition::new(TaskStatus::Starting, Reason::Scheduled),
        )
        .await
        .unwrap();
    drop(s);
    h.fake.after_restart(alive, AfterRestart::Alive);
    let mut s = h.scheduler(4);
    assert_eq!(s.recover().await.unwrap(), 3);
    assert_eq!(h.status(alive).await.0, TaskStatus::Running);
    assert_eq!(
        h.status(gone).await,
        (TaskStatus::Failed, Reason::WorkerLost)
    );
    assert_eq!(
        h.status(never_started).await,
        (TaskStatus::Queued, Reason::Requeued)
    );
    assert_eq!(s.active_count(), 1);
    let r = s.tick().await.unwrap();
    assert_eq!(r.launched, vec![never_started]);
    h.exit(alive, 0);
    s.tick().await.unwrap();
    assert_eq!(h.status(alive).await.0, TaskStatus::Succeeded);
}
