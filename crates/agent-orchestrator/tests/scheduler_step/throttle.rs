//! Launches under API pressure (issue 17): a refused (throttled) task gives up its turn and
//! backs off on its own, a task whose launches keep being refused fails after the launch
//! deadline, and once shutdown is requested no launch begins; what was in flight is adopted
//! by the next start, never launched twice.

use std::time::Duration;

use ao_core::scheduler::SchedulerConfig;
use ao_core::{Reason, TaskStatus};

use crate::harness::{AfterRestart, Harness};

fn attempts(h: &Harness) -> Vec<ao_core::task::TaskId> {
    h.fake.attempts.lock().unwrap().clone()
}

#[tokio::test]
async fn a_throttled_task_gives_up_its_turn_and_backs_off_on_its_own() {
    let mut h = Harness::new().await;
    let mut s = h.scheduler_with(8, 1);
    let (a, b, c) = (h.submit(60).await, h.submit(60).await, h.submit(60).await);
    h.fake.refuse.lock().unwrap().push(a);
    let r = s.tick().await.unwrap();
    assert_eq!(r.requeued, [a]);
    // Throttling is about that one call: the tasks behind it launch in the same step.
    assert_eq!(r.launched, [b, c]);
    assert_eq!(h.status(a).await, (TaskStatus::Queued, Reason::Requeued));
    assert_eq!(attempts(&h), [a, b, c]);
    h.clock.advance(Duration::from_millis(250));
    s.tick().await.unwrap();
    assert_eq!(
        attempts(&h),
        [a, b, c],
        "a was not tried again before its backoff"
    );

    // a's own backoff: at least 1 s after its refusal, then it is tried again.
    h.clock.advance(Duration::from_millis(749));
    s.tick().await.unwrap();
    assert_eq!(attempts(&h).len(), 3, "a waits at least 1 s");
    h.clock.advance(Duration::from_millis(1_251));
    assert_eq!(s.tick().await.unwrap().requeued, [a], "retried within 2 s");
    // The second wait doubles (2 to 4 s): not yet after 1.9 s.
    h.clock.advance(Duration::from_millis(1_900));
    s.tick().await.unwrap();
    assert_eq!(attempts(&h).len(), 4, "the backoff grew");
    let refused =
        h.metrics
            .as_ref()
            .unwrap()
            .launches_refused
            .get_or_create(&ao_core::metrics::CauseLabel {
                cause: "throttled".into(),
            });
    assert_eq!(refused.get(), 2, "counted in ao_launches_refused_total");
    h.fake.refuse.lock().unwrap().clear();
    h.clock.advance(Duration::from_millis(2_200));
    assert_eq!(s.tick().await.unwrap().launched, [a]);
    assert_eq!(h.status(a).await.0, TaskStatus::Running);
}

#[tokio::test]
async fn a_launch_refused_past_its_deadline_fails_its_task_and_never_stays_starting() {
    let mut h = Harness::new().await;
    let mut s = h.scheduler_cfg(SchedulerConfig {
        max_concurrency: 8,
        launch_deadline: Duration::from_secs(30),
        ..Harness::config()
    });
    let a = h.submit(60).await;
    h.fake.refuse.lock().unwrap().push(a);
    let mut waited = Duration::ZERO;
    loop {
        s.tick().await.unwrap();
        let (status, _) = h.status(a).await;
        if status == TaskStatus::Failed {
            break;
        }
        assert_eq!(
            status,
            TaskStatus::Queued,
            "between attempts the task is queued"
        );
        assert!(
            waited < Duration::from_secs(60),
            "still not failed after {waited:?}"
        );
        h.clock.advance(Duration::from_secs(1));
        waited += Duration::from_secs(1);
    }
    assert!(
        waited >= Duration::from_secs(30),
        "failed before its deadline: {waited:?}"
    );
    let t = h.task(a).await;
    assert_eq!(t.reason, Reason::LaunchFailed);
    let msg = t.message.unwrap_or_default();
    assert!(
        msg.contains("--launch-deadline") && msg.contains("429"),
        "the reason says why: {msg}"
    );
    // 1, 2, 4, 4… s apart (each up to twice that with jitter): a handful of tries in 30 s,
    // not one per step.
    let n = attempts(&h).len();
    assert!((4..=12).contains(&n), "{n} attempts");
}

/// Runs the scheduler until `stop` fires; returns it when `run` has returned.
async fn run_until_stopped(
    s: ao_core::scheduler::Scheduler,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(s.run(async move {
        let _ = rx.await;
    }));
    (tx, run)
}

#[tokio::test]
async fn once_shutdown_is_requested_no_launch_begins_and_the_one_in_flight_finishes() {
    let mut h = Harness::new().await;
    let s = h.scheduler_cfg(SchedulerConfig {
        max_concurrency: 8,
        launch_concurrency: 1,
        shutdown_grace: Duration::from_secs(60),
        ..Harness::config()
    });
    let (a, b, c) = (h.submit(60).await, h.submit(60).await, h.submit(60).await);
    h.fake.hold_launch_of.lock().unwrap().push(a);
    let (stop, run) = run_until_stopped(s).await;
    while attempts(&h).is_empty() {
        tokio::task::yield_now().await;
    }
    // Shutdown and the end of the held launch arrive together: shutdown wins.
    stop.send(()).unwrap();
    h.fake.release.notify_waiters();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("run returns within the grace")
        .unwrap();
    assert_eq!(attempts(&h), [a], "no launch began after the shutdown");
    assert_eq!(
        h.status(a).await.0,
        TaskStatus::Running,
        "the launch in flight finished"
    );
    assert_eq!(h.status(b).await.0, TaskStatus::Queued);
    assert_eq!(h.status(c).await.0, TaskStatus::Queued);
}

#[tokio::test]
async fn a_launch_left_in_flight_by_shutdown_is_adopted_by_the_next_start_not_relaunched() {
    let mut h = Harness::new().await;
    let s = h.scheduler_cfg(SchedulerConfig {
        max_concurrency: 8,
        launch_concurrency: 1,
        shutdown_grace: Duration::ZERO,
        ..Harness::config()
    });
    let (a, b) = (h.submit(60).await, h.submit(60).await);
    h.fake.hold_launch_of.lock().unwrap().push(a);
    let (stop, run) = run_until_stopped(s).await;
    while attempts(&h).is_empty() {
        tokio::task::yield_now().await;
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("run returns at once with no grace")
        .unwrap();
    assert_eq!(
        h.status(a).await.0,
        TaskStatus::Starting,
        "left for the next start"
    );
    assert_eq!(h.status(b).await.0, TaskStatus::Queued);

    // The next start: the runtime has a's worker (its create got through).
    h.fake.after_restart(a, AfterRestart::Alive);
    let mut s = h.scheduler_with(8, 1);
    s.recover().await.unwrap();
    assert_eq!(
        h.status(a).await,
        (TaskStatus::Running, Reason::WorkerAdopted)
    );
    assert_eq!(s.tick().await.unwrap().launched, [b]);
    assert_eq!(attempts(&h), [a, b], "a was adopted, not launched again");
}
