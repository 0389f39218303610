//! `tasks submit` and `tasks get`: the prompt from argv, a file or stdin; `--wait`; the table and JSON forms.

use crate::common::TestApp;
use crate::{cli, run_cli, submit};

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
