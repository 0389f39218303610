//! Task lifecycles with script workers through the real local runtime.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{TestApp, alive, script, worker_pid};
use serde_json::{Value, json};

#[tokio::test]
async fn success_and_failure() {
    let app = TestApp::spawn(&[]).await;
    let ok = app.submit(json!({"prompt": "fine"})).await;
    let bad = app
        .submit(json!({"prompt": "broken", "env": {"EXIT": "3"}}))
        .await;
    let t = app.wait_terminal(&ok).await;
    assert_eq!(
        (
            t["status"].as_str(),
            t["reason"].as_str(),
            t["exit_code"].as_i64()
        ),
        (Some("succeeded"), Some("completed"), Some(0))
    );
    assert!(t["started_at"].is_string() && t["finished_at"].is_string());
    assert_eq!(t["worker"]["runtime"], "local");
    let reasons: Vec<&str> = t["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        ["submitted", "scheduled", "worker_started", "completed"]
    );
    let t = app.wait_terminal(&bad).await;
    assert_eq!(
        (
            t["status"].as_str(),
            t["reason"].as_str(),
            t["exit_code"].as_i64()
        ),
        (Some("failed"), Some("exit_code_3"), Some(3))
    );
    let logs = app
        .get(&format!("/api/v1/tasks/{bad}/logs"))
        .await
        .text()
        .await
        .unwrap();
    assert!(logs.starts_with(&format!("start {bad}\n")), "{logs}");
    app.stop().await;
}

#[tokio::test]
async fn timeout_stops_the_worker() {
    let app = TestApp::spawn(&[]).await;
    let id = app
        .submit(json!({"prompt": "slow", "timeout_seconds": 1, "env": {"SLEEP": "60"}}))
        .await;
    let running = app.wait_for(&id, 10, |s| s == "running").await;
    let pid = worker_pid(&running);
    let t = app.wait_terminal(&id).await;
    assert_eq!(
        (t["status"].as_str(), t["reason"].as_str()),
        (Some("timed_out"), Some("deadline_exceeded"))
    );
    assert!(!alive(pid), "worker {pid} still alive");
    app.stop().await;
}

#[tokio::test]
async fn cancel_while_queued_never_starts() {
    let app = TestApp::spawn(&["--max-concurrency", "1"]).await;
    let blocker = app
        .submit(json!({"prompt": "block", "env": {"SLEEP": "60"}}))
        .await;
    app.wait_for(&blocker, 10, |s| s == "running").await;
    let queued = app.submit(json!({"prompt": "waiting"})).await;
    let r = app.cancel(&queued).await;
    assert_eq!(r.status(), 202);
    let t: Value = r.json().await.unwrap();
    assert_eq!(
        (t["status"].as_str(), t["reason"].as_str()),
        (Some("cancelled"), Some("cancelled_by_user"))
    );
    assert!(t.get("started_at").is_none());
    // Submitted after the cancelled task: with one slot and FIFO order, once this one has
    // run, the scheduler has passed the cancelled task by.
    let after = app.submit(json!({"prompt": "after"})).await;
    app.cancel(&blocker).await;
    app.wait_terminal(&blocker).await;
    assert_eq!(app.wait_terminal(&after).await["status"], "succeeded");
    let t = app.task(&queued).await;
    assert!(t.get("worker").is_none(), "cancelled task got a worker");
    assert_eq!(t["status"], "cancelled");
    app.stop().await;
}

#[tokio::test]
async fn cancel_while_running_stops_the_worker() {
    let app = TestApp::spawn(&[]).await;
    let id = app
        .submit(json!({"prompt": "run", "env": {"SLEEP": "60"}}))
        .await;
    let running = app.wait_for(&id, 10, |s| s == "running").await;
    let r = app.cancel(&id).await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap()["cancel_requested"], true);
    let t = app.wait_terminal(&id).await;
    assert_eq!(
        (t["status"].as_str(), t["reason"].as_str()),
        (Some("cancelled"), Some("cancelled_by_user"))
    );
    assert!(!alive(worker_pid(&running)));
    app.stop().await;
}

#[tokio::test]
async fn a_worker_ignoring_sigterm_is_killed_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let worker = script(
        dir.path(),
        "stubborn.sh",
        "trap '' TERM\necho stubborn\nwhile true; do sleep 1; done",
    );
    let args = common::serve_args(dir.path(), &worker, &[]);
    let app = TestApp::spawn_with(dir, args).await;
    let id = app.submit(json!({"prompt": "x"})).await;
    let running = app.wait_for(&id, 10, |s| s == "running").await;
    app.cancel(&id).await;
    let t = app.wait_terminal(&id).await;
    assert_eq!(t["status"], "cancelled");
    assert!(!alive(worker_pid(&running)));
    app.stop().await;
}

#[tokio::test]
async fn concurrency_limit_and_fifo_order() {
    let app = TestApp::spawn(&["--max-concurrency", "2"]).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            app.submit(json!({"prompt": format!("t{i}"), "env": {"SLEEP": "1"}}))
                .await,
        );
    }
    let mut max_running = 0;
    loop {
        let page: Value = app
            .get("/api/v1/tasks?limit=100")
            .await
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap();
        let running = items
            .iter()
            .filter(|t| matches!(t["status"].as_str(), Some("running" | "starting")))
            .count();
        max_running = max_running.max(running);
        if items.iter().all(|t| t["status"] == "succeeded") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(max_running <= 2, "saw {max_running} running");
    assert_eq!(max_running, 2, "the limit was never used fully");
    let mut starts = Vec::new();
    for id in &ids {
        starts.push(
            app.task(id).await["started_at"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted, "tasks did not start in submission order");
    app.stop().await;
}

#[tokio::test]
async fn workers_get_a_clean_environment_and_their_own_folders() {
    let dir = tempfile::tempdir().unwrap();
    let worker = script(
        dir.path(),
        "env.sh",
        "env | cut -d= -f1 | sort\necho \"HOME=$HOME\"\necho \"PWD=$(pwd)\"\necho \"PGID=$(ps -o pgid= $$ | tr -d ' ') PID=$$\"",
    );
    let args = common::serve_args(dir.path(), &worker, &[]);
    let app = TestApp::spawn_with(dir, args).await;
    let id = app
        .submit(json!({"prompt": "secret prompt text", "env": {"MY_SETTING": "on"}}))
        .await;
    assert_eq!(app.wait_terminal(&id).await["status"], "succeeded");
    let logs = app
        .get(&format!("/api/v1/tasks/{id}/logs"))
        .await
        .text()
        .await
        .unwrap();
    let names: HashSet<&str> = logs.lines().filter(|l| !l.contains('=')).collect();
    let allowed: HashSet<&str> = [
        "PATH",
        "LANG",
        "LC_ALL",
        "LC_CTYPE",
        "TZ",
        "HOME",
        "TMPDIR",
        "PWD",
        "SHLVL",
        "_",
        "OLDPWD",
        "AO_TASK_ID",
        "AO_TASK_FILE",
        "AO_WORKSPACE",
        "AO_CALLBACK_URL",
        "AO_CALLBACK_TOKEN",
        "MY_SETTING",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "GITHUB_TOKEN",
        "CLAUDE_CODE_MAX_RETRIES",
        "AO_CLAUDE_BIN",
        "AO_GITHUB_API_URL",
        "AO_GITHUB_REPO",
        "AO_ALLOWED_TOOLS",
        "AO_PERMISSION_MODE",
        "AO_LOG_FORMAT",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
    ]
    .into();
    let extra: Vec<_> = names.difference(&allowed).collect();
    assert!(
        extra.is_empty(),
        "unexpected variables reached the worker: {extra:?}"
    );
    assert!(names.contains("MY_SETTING") && names.contains("AO_TASK_ID"));
    assert!(!logs.contains("CARGO"), "{logs}");
    let task_dir = app
        .dir
        .path()
        .canonicalize()
        .unwrap()
        .join("data/workers")
        .join(&id);
    assert!(
        logs.contains(&format!("HOME={}", task_dir.join("home").display())),
        "{logs}"
    );
    assert!(
        logs.contains(&format!("PWD={}", task_dir.join("workspace").display())),
        "{logs}"
    );
    let pg = logs.lines().find(|l| l.starts_with("PGID=")).unwrap();
    assert!(!pg.is_empty());
    let spec: Value =
        serde_json::from_slice(&std::fs::read(task_dir.join("task.json")).unwrap()).unwrap();
    assert_eq!(spec["prompt"], "secret prompt text");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(task_dir.join("task.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    app.stop().await;
}

#[tokio::test]
async fn workers_run_as_the_configured_unprivileged_user() {
    if !nix::unistd::geteuid().is_root() {
        // Changing user needs root; CI runs as root, so this never skips there.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this test as root"
        );
        eprintln!("not root: skipping the --worker-user test outside CI");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // The unprivileged worker must be able to reach its folder and run its script.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let worker = script(
        dir.path(),
        "whoami.sh",
        "echo \"uid=$(id -u) gid=$(id -g)\"\ntouch \"$HOME/x\" && echo home-writable\ntouch /root/forbidden 2>/dev/null || echo root-denied",
    );
    let args = common::serve_args(dir.path(), &worker, &["--worker-user", "nobody"]);
    let app = TestApp::spawn_with(dir, args).await;
    let id = app.submit(json!({"prompt": "who am i"})).await;
    let t = app.wait_terminal(&id).await;
    let logs = app
        .get(&format!("/api/v1/tasks/{id}/logs"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(t["status"], "succeeded", "{t:#}\n{logs}");
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    assert!(logs.contains(&format!("uid={} ", nobody.uid)), "{logs}");
    assert!(
        logs.contains("home-writable") && logs.contains("root-denied"),
        "{logs}"
    );
    app.stop().await;
}
