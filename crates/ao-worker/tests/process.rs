//! The worker as a process (`run_from_env`), as the orchestrator runs it: signal handling and
//! a leak check over everything the process emits. The test binary re-executes itself to run
//! the worker (see `child_worker_entry`).

mod common;

use std::process::Stdio;
use std::time::Duration;

use ao_testkit::{Reply, Script, Turn};
use common::World;
use serde_json::json;

const CHILD_ENV: &str = "AO_WORKER_TEST_CHILD";

/// Runs the worker when this binary is re-executed as a child; a no-op otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_worker_entry() {
    if std::env::var(CHILD_ENV).as_deref() != Ok("1") {
        return;
    }
    let code = ao_worker::run_from_env_code().await.expect("worker run");
    std::process::exit(i32::from(code));
}

fn worker_command(
    w: &World,
    spec: &ao_core::task::TaskSpec,
    extra: &[(&str, &str)],
) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        "child_worker_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env_clear()
    .envs(w.env(spec))
    .env(CHILD_ENV, "1")
    .envs(extra.iter().copied())
    .current_dir(w.workspace.path())
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    c
}

fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // Fields after the ")" that ends the command name: state, ppid, …
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_worker_and_claude_promptly() {
    let w = World::new(Script::new().when_exhausted(Reply::Stall)).await;
    let spec = w.spec("Wait forever", false);
    let child = worker_command(&w, &spec, &[("AO_LOG_FORMAT", "json")])
        .spawn()
        .unwrap();
    let worker_pid = child.id().unwrap();

    tokio::time::timeout(
        Duration::from_secs(60),
        w.anthropic.wait_for_agent_requests(1),
    )
    .await
    .expect("claude called the API");
    let claude: Vec<u32> = children_of(worker_pid)
        .into_iter()
        .filter(|p| *p != worker_pid)
        .collect();
    assert!(!claude.is_empty(), "claude is not a child of the worker");

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker_pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // A safety net against a hung worker, not a measurement.
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("worker exits")
        .unwrap();
    assert_eq!(out.status.code(), Some(143));
    // Promptly, by construction: Claude Code ended on the SIGTERM itself (no wait for the
    // grace period and no SIGKILL), and the worker reaped it before exiting, so it is gone.
    let ended = claude_ended(&String::from_utf8_lossy(&out.stderr));
    assert_eq!(ended["ended_by"], "Stopped", "{ended}");
    assert_eq!(ended["sigkill"], false, "{ended}");
    assert_eq!(ended["reaped"], true, "{ended}");
    for pid in claude {
        assert!(!alive(pid), "claude ({pid}) still running");
    }
    let result = w.callback.result().expect("result reported before exit");
    assert_eq!(result["outcome"], "stopped");
}

/// The fields of the worker's one `claude ended` log line (JSON logs).
fn claude_ended(stderr: &str) -> serde_json::Value {
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "claude ended")
        .collect();
    assert_eq!(lines.len(), 1, "one `claude ended` line in:\n{stderr}");
    lines[0]["fields"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_leaks_anywhere() {
    // The agent dumps its environment: the worker must scrub what it forwards.
    let script = Script::new()
        .turn(
            Turn::new()
                .tool_use(
                    "Write",
                    json!({"file_path": "{cwd}/notes.txt", "content": "notes\n"}),
                )
                .tool_use(
                    "Bash",
                    json!({"command": "env", "description": "Show environment"}),
                ),
        )
        .turn(Turn::text_only("Done."));
    let w = World::new(script).await;
    let spec = w.spec("Write notes", true);
    let out = worker_command(
        &w,
        &spec,
        &[
            ("AO_ALLOWED_TOOLS", "Write,Bash(env:*)"),
            ("RUST_LOG", "debug"),
            ("AO_LOG_FORMAT", "json"),
        ],
    )
    .output()
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    let result = w.callback.result().expect("result");
    assert_eq!(result["outcome"], "pr_opened");
    // The agent really saw its key (so the scrubbing is what kept it out).
    assert!(
        stdout.contains("ANTHROPIC_API_KEY=[REDACTED]"),
        "env output not forwarded"
    );
    assert!(stdout.contains(&format!("\"task_id\":\"{}\"", w.task_id)));

    let haystacks = [
        ("stdout", stdout),
        ("stderr", stderr),
        (
            "events",
            serde_json::to_string(&w.callback.events()).unwrap(),
        ),
        ("result", result.to_string()),
        ("bare config", w.bare.config_text()),
        (
            "clone config",
            std::fs::read_to_string(w.workspace.path().join("repo/.git/config")).unwrap(),
        ),
        ("pull body", format!("{:?}", w.github.pulls())),
    ];
    let secrets = [
        ("GITHUB_TOKEN", &w.github_token),
        ("ANTHROPIC_API_KEY", &w.anthropic_key),
        ("callback token", &w.callback.token),
    ];
    for (where_, text) in &haystacks {
        for (name, value) in &secrets {
            assert!(
                !text.contains(value.as_str()),
                "{name} leaked into {where_}"
            );
        }
    }
    // GITHUB_TOKEN never reached the agent at all.
    assert!(
        !haystacks[0].1.contains("GITHUB_TOKEN="),
        "GITHUB_TOKEN was in the agent's environment"
    );
}
