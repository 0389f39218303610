//! Following a task through the real server: `tasks logs -f`, `tasks events`, `tasks cancel`
//! then `tasks wait`.

use std::time::Duration;

use serde_json::Value;

use crate::common::TestApp;
use crate::{cli, is_terminal, submit};

#[tokio::test]
async fn logs_print_the_workers_output_and_follow_until_the_end() {
    let app = TestApp::spawn(&[]).await;
    let id = submit(&app, &["quick"]).await;
    app.wait_terminal(&id).await;
    let out = cli(&app, &["tasks", "logs", &id]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        format!("start {id}\nline two\ndone\n"),
        "{out:?}"
    );

    // -f on a running task streams until the task ends, then exits by itself.
    let slow = submit(&app, &["--env", "SLEEP=2", "slow"]).await;
    app.wait_for(&slow, 30, |s| s == "running" || is_terminal(s))
        .await;
    let started = std::time::Instant::now();
    let followed = cli(&app, &["tasks", "logs", "-f", &slow]).await;
    assert_eq!(followed.code, 0, "{followed:?}");
    assert!(followed.stdout.ends_with("done\n"), "{followed:?}");
    assert!(
        followed.stdout.starts_with(&format!("start {slow}\n")),
        "{followed:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(app.task(&slow).await["status"], "succeeded");
    app.stop().await;
}

#[tokio::test]
async fn events_of_a_task_without_events() {
    let app = TestApp::spawn(&[]).await;
    let id = submit(&app, &["no events"]).await;
    app.wait_terminal(&id).await;
    let raw = cli(&app, &["tasks", "events", &id, "-o", "json"]).await;
    assert_eq!(raw.code, 0, "{raw:?}");
    assert!(raw.stdout.trim().is_empty(), "no events, no lines: {raw:?}");
    for line in raw.stdout.lines() {
        serde_json::from_str::<Value>(line).expect("each line is JSON");
    }
    let readable = cli(&app, &["tasks", "events", &id]).await;
    assert_eq!(readable.code, 0, "{readable:?}");
    assert!(
        readable.stdout.trim().starts_with("task succeeded"),
        "{readable:?}"
    );
    let followed = cli(&app, &["tasks", "events", "-f", &id]).await;
    assert_eq!(followed.code, 0, "{followed:?}");
    app.stop().await;
}

#[tokio::test]
async fn cancel_a_running_task_then_wait_exits_1() {
    let app = TestApp::spawn(&[]).await;
    let id = submit(&app, &["--env", "SLEEP=60", "long"]).await;
    app.wait_for(&id, 30, |s| s == "running").await;
    let out = cli(&app, &["tasks", "cancel", &id]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let line = out.stdout.trim();
    assert!(
        line == format!("task {id} cancelled") || line == format!("task {id} cancelling"),
        "{out:?}"
    );
    let waited = cli(&app, &["tasks", "wait", &id]).await;
    assert_eq!(waited.code, 1, "{waited:?}");
    assert!(
        waited
            .stdout
            .lines()
            .any(|l| l.starts_with("Status:") && l.ends_with("cancelled")),
        "{waited:?}"
    );
    // Cancelling it again is a conflict.
    cli(&app, &["tasks", "cancel", &id])
        .await
        .assert_error(8, "conflict");
    app.stop().await;
}
