//! kill -9 the server with tasks queued, running and finishing; restart it; nothing is lost
//! and nothing stays running forever.

mod common;

use std::time::Duration;

use common::{ServerProcess, script, worker_pid};
use serde_json::{Value, json};

fn start(dir: &std::path::Path, worker: &std::path::Path) -> ServerProcess {
    let data = dir.join("data");
    ServerProcess::start(
        &[
            "--max-concurrency".as_ref(),
            "3".as_ref(),
            "--data-dir".as_ref(),
            data.as_os_str(),
            "--worker-command".as_ref(),
            worker.as_os_str(),
        ],
        &[],
    )
}

async fn submit(c: &reqwest::Client, s: &ServerProcess, sleep: u32) -> String {
    let r = c
        .post(format!("{}/api/v1/tasks", s.base))
        .json(&json!({"prompt": "p", "env": {"SLEEP": sleep.to_string()}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn kill_9_and_restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let worker = script(dir.path(), "worker.sh", common::SCRIPT_WORKER);
    let c = common::client();
    let mut s = start(dir.path(), &worker);
    let finishes_while_down = submit(&c, &s, 1).await;
    let outlives_restart = submit(&c, &s, 6).await;
    let killed_while_down = submit(&c, &s, 60).await;
    let queued = submit(&c, &s, 0).await;
    for id in [&finishes_while_down, &outlives_restart, &killed_while_down] {
        s.wait_status(&c, id, &["running"]).await;
    }
    assert_eq!(s.task(&c, &queued).await["status"], "queued");
    let victim = worker_pid(&s.task(&c, &killed_while_down).await);

    s.kill();
    // While the orchestrator is down: one worker finishes, one dies without a trace.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(victim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let mut s = start(dir.path(), &worker);
    let t = s
        .wait_status(&c, &finishes_while_down, &["succeeded", "failed"])
        .await;
    assert_eq!(
        (t["status"].as_str(), t["exit_code"].as_i64()),
        (Some("succeeded"), Some(0)),
        "{t:#}"
    );
    let t = s
        .wait_status(&c, &killed_while_down, &["succeeded", "failed"])
        .await;
    assert_eq!(
        (t["status"].as_str(), t["reason"].as_str()),
        (Some("failed"), Some("worker_lost")),
        "{t:#}"
    );
    let t = s
        .wait_status(&c, &outlives_restart, &["succeeded", "failed"])
        .await;
    assert_eq!(t["status"], "succeeded", "{t:#}");
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
    let t = s.wait_status(&c, &queued, &["succeeded", "failed"]).await;
    assert_eq!(t["status"], "succeeded", "{t:#}");
    // Output written across the restart is complete and not duplicated.
    for id in [&finishes_while_down, &outlives_restart] {
        let logs = c
            .get(format!("{}/api/v1/tasks/{id}/logs", s.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(logs, format!("start {id}\nline two\ndone\n"));
    }
    let list: Value = c
        .get(format!("{}/api/v1/tasks", s.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 4);
    s.kill();
}
