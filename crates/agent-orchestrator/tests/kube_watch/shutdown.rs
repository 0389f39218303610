//! Issue 17 on the real API server: SIGTERM while launches are throttled. The neighbour holds
//! every seat of the orchestrator's priority level, so its launches are in flight, retrying
//! 429s, with tasks queued behind them. After SIGTERM no launch begins (no task moves to
//! `starting` from then on, judged from the tasks' own history), the process exits within
//! its shutdown grace, and the next start, once the squeeze is over, adopts or requeues what
//! was in flight: every task succeeds, with one pod each.

use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::flow::{Neighbour, Squeezed, seats};

const TASKS: usize = 6;
/// Launches in flight at once: fewer than the tasks, so some wait in the queue.
const WINDOW: &str = "2";
/// Between a launch's check of the shutdown flag and its `starting` stamp: a `starting` this
/// soon after the scheduler logged the shutdown may have passed the check before it.
const CHECK_SLACK: chrono::TimeDelta = chrono::TimeDelta::milliseconds(50);

fn starts(task: &Value) -> Vec<DateTime<Utc>> {
    task["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| h["to"] == "starting")
        .filter_map(|h| h["at"].as_str()?.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_throttled_launches_begins_none_and_the_next_start_adopts_them() {
    let squeezed = Squeezed::new("ao-sigterm").await;
    let (w, pl) = (&squeezed.w, &squeezed.pl);
    let flags = ["--launch-concurrency", WINDOW, "--shutdown-grace", "30"];
    let (mut first, log) = squeezed.start(TASKS, &flags, None).await;
    let user = w.sa_user();
    let seats = seats(w, pl).await;
    let mut neighbour = Neighbour::new(w).await;
    neighbour.hold_all(w, pl, seats).await;
    neighbour.wait_for_status(429).await;

    let after = log.mark();
    let mut ids = Vec::new();
    for i in 0..TASKS {
        ids.push(
            first
                .submit(&format!("task {i}, stopped while throttled"))
                .await,
        );
    }
    after
        .wait_for("the orchestrator's throttled creates", 60, |evs| {
            evs.iter()
                .any(|e| e.user == user && e.verb == "create" && e.code == 429)
                .then_some(())
        })
        .await;
    let term: DateTime<Utc> = SystemTime::now().into();
    let clean = first.terminate(60);
    let stopped: DateTime<Utc> = SystemTime::now().into();
    assert!(
        clean,
        "the orchestrator's exit after SIGTERM was not clean:\n{}",
        first.tail(40)
    );
    // When the scheduler took the shutdown in (its log line), not when the test sent the
    // signal: on a loaded machine the two can be far apart.
    let noticed: Option<DateTime<Utc>> = first
        .logged("shutdown requested: no launch begins; waiting for the step in flight")
        .first()
        .and_then(|l| l["timestamp"].as_str()?.parse().ok());
    let said_so = noticed.is_some();
    let noticed = noticed.unwrap_or(term);
    let first_log = first.tail(40);
    let port = first.port();
    drop(first);

    neighbour.let_go();
    neighbour.wait_for_status(200).await;
    let second = w
        .orchestrator_with(&w.env.server, TASKS, &flags, Some(port))
        .await;
    second
        .assert_all_answered(&ids, crate::world::AGENT_SECS)
        .await;

    let mut begun_before = 0;
    for id in &ids {
        let task = second.task(id).await;
        let at = starts(&task);
        let late: Vec<_> = at
            .iter()
            .filter(|t| **t > noticed + CHECK_SLACK && **t < stopped)
            .collect();
        assert!(
            late.is_empty(),
            "task {id} began a launch {late:?} after the shutdown at {noticed}: {task:#}"
        );
        begun_before += usize::from(at.iter().any(|t| *t <= noticed + CHECK_SLACK));
    }
    assert!(
        begun_before < TASKS,
        "every task had begun before SIGTERM: nothing was queued behind the throttled launches"
    );
    assert!(said_so, "no shutdown line in the log:\n{first_log}");
    let pods: Vec<String> = after
        .events()
        .into_iter()
        .filter(|e| e.on_pods_by(&user, &w.ns) && e.verb == "create" && e.code == 201)
        .map(|e| e.name.unwrap_or_default())
        .collect();
    let mut names = pods.clone();
    names.sort();
    names.dedup();
    assert_eq!(pods.len(), TASKS, "one pod per task: {pods:?}");
    assert_eq!(names.len(), TASKS, "no pod created twice: {pods:?}");
    eprintln!(
        "figures(sigterm): {seats} seats held; {begun_before} of {TASKS} tasks had begun a launch \
         when SIGTERM came, none began after it; exit {:.2} s after SIGTERM; all {TASKS} \
         answered after the restart, one pod each",
        (stopped - term).as_seconds_f64()
    );
}
