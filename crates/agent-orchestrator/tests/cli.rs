//! `agent-orchestrator tasks ...` and `completions`: the real binary against a real server on
//! 127.0.0.1:0 (script workers), checking output, exit codes and error messages.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{BIN, TestApp};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// Every CLI run is bounded by this.
const RUN_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// A failure: the given exit code and exactly one `error: ...` line on stderr.
    fn assert_error(&self, code: i32, needle: &str) {
        assert_eq!(self.code, code, "{self:?}");
        let lines: Vec<&str> = self.stderr.trim_end().lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr: {self:?}");
        assert!(lines[0].starts_with("error: "), "{self:?}");
        assert!(
            lines[0].contains(needle),
            "stderr mentions `{needle}`: {self:?}"
        );
        assert!(self.stdout.is_empty(), "nothing on stdout: {self:?}");
    }
}

/// Run the binary with `AO_URL` (and `AO_TOKEN` when given); `stdin` is piped when given.
async fn run_cli(url: &str, token: Option<&str>, args: &[&str], stdin: Option<&str>) -> Out {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .env("AO_URL", url)
        .env_remove("AO_TOKEN")
        .env_remove("AO_CONFIG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(t) = token {
        cmd.env("AO_TOKEN", t);
    }
    let mut child = cmd.spawn().expect("spawn the CLI");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let out = tokio::time::timeout(RUN_LIMIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "`agent-orchestrator {}` did not end within {RUN_LIMIT:?}",
                args.join(" ")
            )
        })
        .unwrap();
    Out {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn cli(app: &TestApp, args: &[&str]) -> Out {
    run_cli(&app.base, app.token.as_deref(), args, None).await
}

/// Submit through the CLI with `-o json`; returns the id.
async fn submit(app: &TestApp, args: &[&str]) -> String {
    let mut argv = vec!["tasks", "submit", "-o", "json"];
    argv.extend_from_slice(args);
    let out = cli(app, &argv).await;
    assert_eq!(out.code, 0, "{out:?}");
    out.json()["id"].as_str().expect("id").to_string()
}

fn is_terminal(s: &str) -> bool {
    matches!(s, "succeeded" | "failed" | "cancelled" | "timed_out")
}

#[tokio::test]
async fn submit_and_get_round_trip() {
    let app = TestApp::spawn(&[]).await;
    let out = cli(
        &app,
        &[
            "tasks",
            "submit",
            "hello world",
            "--label",
            "team=a",
            "--label",
            "kind=test",
            "--env",
            "FOO=bar",
            "--timeout",
            "30m",
            "--model",
            "claude-test",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let t = out.json();
    let id = t["id"].as_str().unwrap().to_string();
    assert_eq!(t["prompt"], "hello world");
    assert_eq!(t["status"], "queued");
    assert_eq!(t["timeout_seconds"], 1800);
    assert_eq!(t["model"], "claude-test");
    assert_eq!(t["labels"]["team"], "a");
    assert_eq!(t["labels"]["kind"], "test");

    let got = cli(&app, &["tasks", "get", &id, "-o", "json"]).await;
    assert_eq!(got.code, 0, "{got:?}");
    let g = got.json();
    assert_eq!(g["id"], t["id"]);
    assert_eq!(g["prompt"], "hello world");
    assert_eq!(g["labels"], t["labels"]);
    assert_eq!(g["created_at"], t["created_at"]);

    // The table form is `Key: value` lines.
    let done = app.wait_terminal(&id).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    let table = cli(&app, &["tasks", "get", &id]).await;
    assert_eq!(table.code, 0, "{table:?}");
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.starts_with("ID:") && l.ends_with(&id)),
        "{table:?}"
    );
    assert!(
        table
            .stdout
            .lines()
            .any(|l| l.starts_with("Status:") && l.ends_with("succeeded")),
        "{table:?}"
    );
    assert!(
        table.stdout.contains("Prompt:") && table.stdout.contains("hello world"),
        "{table:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn submit_reads_the_prompt_from_a_file_and_from_stdin() {
    let app = TestApp::spawn(&[]).await;
    let file = app.dir.path().join("prompt.md");
    std::fs::write(&file, "from a file\nsecond line\n").unwrap();
    let id = submit(&app, &["-f", file.to_str().unwrap()]).await;
    assert_eq!(app.task(&id).await["prompt"], "from a file\nsecond line\n");

    let out = run_cli(
        &app.base,
        None,
        &["tasks", "submit", "-o", "json", "-"],
        Some("from stdin\n"),
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    let id2 = out.json()["id"].as_str().unwrap().to_string();
    assert_eq!(app.task(&id2).await["prompt"], "from stdin\n");

    // A missing file is a usage error.
    let missing = app.dir.path().join("nope.md");
    cli(&app, &["tasks", "submit", "-f", missing.to_str().unwrap()])
        .await
        .assert_error(2, "cannot read");
    for id in [id, id2] {
        app.wait_terminal(&id).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn submit_wait_exits_with_the_tasks_outcome() {
    let app = TestApp::spawn(&[]).await;
    let ok = cli(&app, &["tasks", "submit", "--wait", "will succeed"]).await;
    assert_eq!(ok.code, 0, "{ok:?}");
    assert!(ok.stderr.contains("submitted"), "{ok:?}");
    assert!(
        ok.stdout
            .lines()
            .any(|l| l.starts_with("Status:") && l.ends_with("succeeded")),
        "{ok:?}"
    );
    assert!(ok.stdout.contains("will succeed"), "{ok:?}");

    let bad = cli(
        &app,
        &["tasks", "submit", "--wait", "--env", "EXIT=3", "will fail"],
    )
    .await;
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(
        bad.stdout
            .lines()
            .any(|l| l.starts_with("Status:") && l.ends_with("failed")),
        "{bad:?}"
    );
    assert!(
        bad.stdout
            .lines()
            .any(|l| l.starts_with("Exit code:") && l.ends_with('3')),
        "{bad:?}"
    );

    // With -o json the final task is the only thing on stdout.
    let j = cli(
        &app,
        &[
            "tasks",
            "submit",
            "--wait",
            "-o",
            "json",
            "--env",
            "EXIT=3",
            "json fail",
        ],
    )
    .await;
    assert_eq!(j.code, 1, "{j:?}");
    let t = j.json();
    assert_eq!(t["status"], "failed");
    assert_eq!(t["exit_code"], 3);
    assert_eq!(t["prompt"], "json fail");
    app.stop().await;
}

/// Character offset of each header word in the header line.
fn column_starts(header: &str, names: &[&str]) -> Vec<usize> {
    names
        .iter()
        .map(|n| {
            header
                .find(n)
                .unwrap_or_else(|| panic!("header `{header}` has {n}"))
        })
        .collect()
}

/// Every row has a cell starting exactly at each column start, preceded by padding.
fn assert_aligned(table: &str, names: &[&str]) {
    let mut lines = table.lines();
    let header = lines.next().expect("a header line");
    let starts = column_starts(header, names);
    assert_eq!(starts[0], 0, "{table}");
    assert!(starts.windows(2).all(|w| w[0] < w[1]), "{table}");
    for row in lines {
        let chars: Vec<char> = row.chars().collect();
        for &s in &starts[1..] {
            assert!(chars.len() > s, "row too short for its columns:\n{table}");
            assert!(
                chars[s - 2..s].iter().all(|c| *c == ' ') && chars[s] != ' ',
                "misaligned at {s}:\n{table}"
            );
        }
    }
}

#[tokio::test]
async fn list_shows_an_aligned_filterable_table() {
    let app = TestApp::spawn(&[]).await;
    let a = submit(&app, &["--label", "team=a", "first task"]).await;
    let b = submit(
        &app,
        &[
            "--label",
            "team=b",
            "--env",
            "EXIT=3",
            "second task with a much longer prompt",
        ],
    )
    .await;
    let c = submit(&app, &["--label", "team=a", "third"]).await;
    for id in [&a, &b, &c] {
        app.wait_terminal(id).await;
    }

    let out = cli(&app, &["tasks", "list"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{out:?}");
    let cols = ["ID", "STATUS", "REASON", "AGE", "PROMPT"];
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        cols,
        "{out:?}"
    );
    assert_aligned(&out.stdout, &cols);
    // Newest first, with relative ages.
    assert!(
        lines[1].starts_with(&c) && lines[2].starts_with(&b) && lines[3].starts_with(&a),
        "{out:?}"
    );
    let age_at = column_starts(lines[0], &["AGE"])[0];
    for row in &lines[1..] {
        let age: String = row.chars().skip(age_at).collect();
        let (n, rest) = age
            .split_once('s')
            .unwrap_or_else(|| panic!("age in `{row}`"));
        assert!(
            n.parse::<u32>().is_ok_and(|n| n < 60) && rest.starts_with(" ago"),
            "`0s ago`-like age in `{row}`"
        );
    }
    assert!(
        lines[2].contains("failed") && lines[1].contains("succeeded"),
        "{out:?}"
    );

    let failed = cli(&app, &["tasks", "list", "--status", "failed"]).await;
    assert_eq!(failed.code, 0, "{failed:?}");
    let rows: Vec<&str> = failed.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{failed:?}");
    assert!(rows[0].starts_with(&b), "{failed:?}");

    let team_a = cli(&app, &["tasks", "list", "--label", "team=a", "-o", "json"]).await;
    assert_eq!(team_a.code, 0, "{team_a:?}");
    let ids: Vec<String> = team_a
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec![c.clone(), a.clone()]);

    let none = cli(&app, &["tasks", "list", "--label", "team=zzz"]).await;
    assert_eq!(
        (none.code, none.stdout.trim()),
        (0, "No tasks found."),
        "{none:?}"
    );

    let all = cli(&app, &["tasks", "list", "-o", "json"]).await;
    assert_eq!(all.json().as_array().unwrap().len(), 3);

    let wide = cli(&app, &["tasks", "list", "-o", "wide"]).await;
    assert_eq!(wide.code, 0, "{wide:?}");
    let wide_cols = [
        "ID", "STATUS", "REASON", "AGE", "WORKER", "COST", "LABELS", "PROMPT",
    ];
    assert_eq!(
        wide.stdout
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        wide_cols
    );
    assert_aligned(&wide.stdout, &wide_cols);
    assert!(wide.stdout.contains("team=b"), "{wide:?}");
    app.stop().await;
}

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

#[tokio::test]
async fn a_missing_or_wrong_token_is_exit_4() {
    let app = TestApp::spawn(&["--api-tokens", "s3cret-token-0123456789"]).await;
    assert_eq!(app.token.as_deref(), Some("s3cret-token-0123456789"));
    let none = run_cli(&app.base, None, &["tasks", "list"], None).await;
    none.assert_error(4, "unauthorized");
    let wrong = run_cli(
        &app.base,
        Some("not-the-right-token-at-all"),
        &["tasks", "submit", "x"],
        None,
    )
    .await;
    wrong.assert_error(4, "AO_TOKEN");
    let flag = run_cli(
        &app.base,
        None,
        &["tasks", "list", "--token", "s3cret-token-0123456789"],
        None,
    )
    .await;
    assert_eq!(flag.code, 0, "{flag:?}");
    let ok = cli(&app, &["tasks", "list", "-o", "json"]).await;
    assert_eq!(ok.code, 0, "{ok:?}");
    assert_eq!(ok.json(), serde_json::json!([]));
    app.stop().await;
}

#[tokio::test]
async fn errors_have_distinct_exit_codes_and_one_line_messages() {
    let app = TestApp::spawn(&["--max-body-bytes", "2048"]).await;
    // 404: unknown (or impossible) ids, for every command that takes one.
    let unknown = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    for args in [
        vec!["tasks", "get", unknown],
        vec!["tasks", "get", "not-a-task"],
        vec!["tasks", "logs", unknown],
        vec!["tasks", "events", unknown],
        vec!["tasks", "cancel", unknown],
        vec!["tasks", "wait", unknown],
    ] {
        cli(&app, &args).await.assert_error(5, "not found");
    }
    // 422 and 413: invalid.
    cli(&app, &["tasks", "submit", "--env", "BAD-NAME=x", "p"])
        .await
        .assert_error(6, "invalid request");
    let big = app.dir.path().join("big.txt");
    std::fs::write(&big, "x".repeat(4096)).unwrap();
    cli(&app, &["tasks", "submit", "-f", big.to_str().unwrap()])
        .await
        .assert_error(6, "invalid request");
    cli(&app, &["tasks", "list", "--status", "bogus"])
        .await
        .assert_error(6, "invalid request");
    // 409: cancelling a finished task.
    let id = submit(&app, &["finishes"]).await;
    app.wait_terminal(&id).await;
    cli(&app, &["tasks", "cancel", &id])
        .await
        .assert_error(8, "conflict");
    // Usage: malformed key=value pairs, before anything is sent.
    cli(&app, &["tasks", "submit", "--label", "nokv", "p"])
        .await
        .assert_error(2, "nokv");
    cli(&app, &["tasks", "submit", "--env", "NOVALUE", "p"])
        .await
        .assert_error(2, "NOVALUE");
    cli(&app, &["tasks", "list", "--label", "nokv"])
        .await
        .assert_error(2, "nokv");
    let bad_url = run_cli("ftp://example", None, &["tasks", "list"], None).await;
    bad_url.assert_error(2, "http://");
    // clap's own usage errors are exit 2 as well.
    let clap = cli(&app, &["tasks", "submit", "--timeout", "soon", "p"]).await;
    assert_eq!(clap.code, 2, "{clap:?}");
    assert!(
        clap.stderr.starts_with("error:") && clap.stderr.contains("soon"),
        "{clap:?}"
    );
    let no_prompt = cli(&app, &["tasks", "submit"]).await;
    assert_eq!(no_prompt.code, 2, "{no_prompt:?}");
    // Nothing invalid was stored.
    assert_eq!(
        cli(&app, &["tasks", "list", "-o", "json"])
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_server_is_exit_3() {
    for args in [
        vec!["tasks", "list"],
        vec!["tasks", "submit", "x"],
        vec!["tasks", "wait", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"],
    ] {
        let out = run_cli("http://127.0.0.1:1", None, &args, None).await;
        out.assert_error(3, "cannot reach the orchestrator at http://127.0.0.1:1");
    }
}

#[tokio::test]
async fn a_full_queue_is_exit_7() {
    let app = TestApp::spawn(&["--max-concurrency", "1", "--max-queued", "1"]).await;
    let running = submit(&app, &["--env", "SLEEP=60", "long"]).await;
    app.wait_for(&running, 30, |s| s == "running").await;
    let queued = submit(&app, &["--env", "SLEEP=60", "waits"]).await;
    assert_eq!(app.task(&queued).await["status"], "queued");
    cli(&app, &["tasks", "submit", "one too many"])
        .await
        .assert_error(7, "queue is full");
    // Clean up: cancel both, bounded.
    for id in [&queued, &running] {
        let out = cli(&app, &["tasks", "cancel", id]).await;
        assert_eq!(out.code, 0, "{out:?}");
    }
    for id in [&queued, &running] {
        assert_eq!(app.wait_terminal(id).await["status"], "cancelled");
    }
    app.stop().await;
}

#[tokio::test]
async fn completions_print_a_bash_script() {
    let out = run_cli("http://127.0.0.1:1", None, &["completions", "bash"], None).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("agent-orchestrator"), "{out:?}");
    assert!(out.stdout.contains("complete -F"), "{out:?}");
    assert!(out.stdout.contains("tasks"), "{out:?}");
    let bad = run_cli(
        "http://127.0.0.1:1",
        None,
        &["completions", "nosuchshell"],
        None,
    )
    .await;
    assert_eq!(bad.code, 2, "{bad:?}");
}
