//! Crashes. kill -9 the server with tasks queued, running and finishing; restart it; nothing
//! is lost and nothing stays running forever. And, deterministically, the narrowest window:
//! the scheduler dies inside the worker's launch, before the task is recorded `running`.

mod common;
#[path = "scheduler_step/harness.rs"]
mod harness;

use std::time::Duration;

use ao_core::scheduler::RECORDED_EXIT_NOTE;
use ao_core::{Reason, TaskStatus};
use common::{ServerProcess, alive, script, worker_pid};
use harness::{AfterRestart, Harness};
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
    let finisher = worker_pid(&s.task(&c, &finishes_while_down).await);

    s.kill();
    // While the orchestrator is down: one worker finishes, one dies without a trace.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(victim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    for pid in [finisher, victim] {
        wait_gone(pid).await;
    }

    let mut s = start(dir.path(), &worker);
    let t = s
        .wait_status(&c, &finishes_while_down, &["succeeded", "failed"])
        .await;
    assert_eq!(
        (t["status"].as_str(), t["exit_code"].as_i64()),
        (Some("succeeded"), Some(0)),
        "{t:#}"
    );
    // Settled from the exit its worker recorded, not from a worker adopted alive.
    assert_eq!(t["message"], RECORDED_EXIT_NOTE, "{t:#}");
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
    assert!(t.get("message").is_none(), "its exit was watched: {t:#}");
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

/// Wait (bounded) until a worker's process is gone.
async fn wait_gone(pid: i32) {
    for _ in 0..500 {
        if !alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("worker {pid} still runs");
}

/// The window that wedged recovery for good: the worker was launched, the scheduler died
/// before recording it `running`, and the worker exited before the restart. Recovery settles
/// it from the recorded exit (through `running`, which the lifecycle requires), and the queue
/// behind it runs.
#[tokio::test]
async fn a_crash_between_launch_and_running_is_settled_from_the_recorded_exit() {
    let mut h = Harness::new().await;
    let mut s = h.scheduler(1);
    let crashed = h.submit(60).await;
    let next = h.submit(60).await;
    *h.fake.hang_in_launch.lock().unwrap() = true;
    tokio::select! {
        r = s.tick() => panic!("the step returned instead of hanging in launch: {r:?}"),
        () = h.fake.launch_entered.notified() => {}
    }
    drop(s); // The crash: the worker exists, the store still says `starting`.
    assert_eq!(h.status(crashed).await.0, TaskStatus::Starting);
    assert_eq!(*h.fake.launched.lock().unwrap(), vec![crashed]);

    *h.fake.hang_in_launch.lock().unwrap() = false;
    h.fake.after_restart(crashed, AfterRestart::Exited(0));
    let mut s = h.scheduler(1);
    assert_eq!(s.recover().await.unwrap(), 1);
    let t = h.task(crashed).await;
    assert_eq!(
        (t.status, t.reason, t.exit_code, t.message.as_deref()),
        (
            TaskStatus::Succeeded,
            Reason::Completed,
            Some(0),
            Some(RECORDED_EXIT_NOTE)
        )
    );
    assert_eq!(
        h.reasons(crashed).await,
        ["submitted", "scheduled", "recorded_exit", "completed"]
    );
    assert!(s.handle().set_aside().is_empty());
    assert_eq!(s.tick().await.unwrap().launched, vec![next]);
}
