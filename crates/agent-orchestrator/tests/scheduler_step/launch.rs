//! Launches in flight at once: a slow (throttled) launch holds one slot of the window while
//! the tasks behind it launch; the window bounds how many launches run; an unavailable
//! runtime backs admission off once per step, however many launches it refused.

use std::time::Duration;

use ao_core::TaskStatus;
use ao_core::task::TaskId;

use crate::harness::Harness;

/// Drive `tick` (which must not finish) until `done` holds, or fail after 10 s.
async fn until<F: Fn() -> bool>(tick: impl std::future::Future, done: F, what: &str) {
    tokio::pin!(tick);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        tokio::select! {
            _ = &mut tick => panic!("the step returned before {what}"),
            () = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
        if done() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
    }
}

fn entered(h: &Harness) -> Vec<TaskId> {
    h.fake.launched.lock().unwrap().clone()
}

#[tokio::test]
async fn a_slow_launch_holds_one_slot_while_the_tasks_behind_it_launch() {
    let mut h = Harness::new().await;
    let mut s = h.scheduler_with(4, 4);
    let ids = [h.submit(60).await, h.submit(60).await, h.submit(60).await];
    h.fake.hold_launch_of.lock().unwrap().push(ids[0]);
    {
        let tick = s.tick();
        tokio::pin!(tick);
        until(
            &mut tick,
            || entered(&h).len() == 3,
            "the tasks behind the slow one launched",
        )
        .await;
        // The two behind it get recorded as running while the first still waits (their
        // store writes finish while the step goes on, so wait for them, driving the step).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut running = 0;
            for id in &ids[1..] {
                running += usize::from(h.status(*id).await.0 == TaskStatus::Running);
            }
            if running == 2 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the two tasks behind the slow launch were never recorded as running"
            );
            tokio::select! {
                _ = &mut tick => panic!("the step returned before the slow launch was released"),
                () = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
        assert_eq!(h.status(ids[0]).await.0, TaskStatus::Starting);
        h.fake.release.notify_waiters();
        let r = tick.await.unwrap();
        assert_eq!(r.launched, ids, "reported in queue order");
    }
    assert_eq!(h.status(ids[0]).await.0, TaskStatus::Running);
    assert_eq!(s.active_count(), 3);
}

#[tokio::test]
async fn the_window_bounds_the_launches_in_flight() {
    let mut h = Harness::new().await;
    let mut s = h.scheduler_with(8, 2);
    let ids = [
        h.submit(60).await,
        h.submit(60).await,
        h.submit(60).await,
        h.submit(60).await,
    ];
    h.fake.hold_launch_of.lock().unwrap().extend(&ids[..2]);
    {
        let tick = s.tick();
        tokio::pin!(tick);
        until(&mut tick, || entered(&h).len() == 2, "two launches began").await;
        // Both slots are held: more time passes and nothing else begins.
        for _ in 0..20 {
            tokio::select! {
                _ = &mut tick => panic!("the step returned while two launches were held"),
                () = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
        assert_eq!(
            entered(&h),
            ids[..2],
            "only the window's two launches began"
        );
        assert_eq!(h.status(ids[2]).await.0, TaskStatus::Queued);
        h.fake.release.notify_waiters();
        assert_eq!(tick.await.unwrap().launched, ids);
    }
}

#[tokio::test]
async fn an_unavailable_runtime_backs_admission_off_once_per_step() {
    let mut h = Harness::new().await;
    let mut s = h.scheduler_with(8, 4);
    let ids = [h.submit(60).await, h.submit(60).await, h.submit(60).await];
    *h.fake.unavailable.lock().unwrap() = true;
    let r = s.tick().await.unwrap();
    assert!(!r.requeued.is_empty());
    for id in ids {
        assert_eq!(h.status(id).await.0, TaskStatus::Queued, "no task is lost");
    }
    let refused = h.fake.attempts.lock().unwrap().len();
    // One short pause (250 ms) for the step, not one doubling per refused launch.
    h.clock.advance(Duration::from_millis(249));
    assert!(s.tick().await.unwrap().requeued.is_empty(), "pausing");
    assert_eq!(h.fake.attempts.lock().unwrap().len(), refused);
    *h.fake.unavailable.lock().unwrap() = false;
    // Then the tasks that were not tried launch; the refused ones wait out their own
    // backoff (1 s, jittered up to 2 s).
    h.clock.advance(Duration::from_millis(1));
    let now = s.tick().await.unwrap().launched;
    assert_eq!(now.len(), 3 - refused, "only the untried tasks launch yet");
    h.clock.advance(Duration::from_secs(2));
    let later = s.tick().await.unwrap().launched;
    let mut all: Vec<_> = now.into_iter().chain(later).collect();
    all.sort();
    let mut want = ids.to_vec();
    want.sort();
    assert_eq!(all, want, "every task launched once its backoff passed");
}

/// A task submitted while a slow (throttled) launch is in flight launches at once, in the
/// same step, on the API's poke: it does not wait for the slow one to end.
#[tokio::test]
async fn a_task_submitted_during_a_slow_launch_does_not_wait_for_it() {
    let mut h = Harness::new().await;
    let mut s = h.scheduler_with(8, 4);
    let handle = s.handle();
    let slow = h.submit(60).await;
    h.fake.hold_launch_of.lock().unwrap().push(slow);
    let tick = s.tick();
    tokio::pin!(tick);
    until(&mut tick, || entered(&h) == [slow], "the slow launch began").await;
    let late = h.submit(60).await;
    handle.poke();
    until(
        &mut tick,
        || entered(&h) == [slow, late],
        "the late task's launch began beside the slow one",
    )
    .await;
    h.fake.release.notify_waiters();
    let r = tick.await.unwrap();
    assert_eq!(r.launched, [slow, late]);
}
