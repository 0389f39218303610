//! Failures: one `error: ...` line and a distinct exit code for each kind (token, not found,
//! invalid, conflict, usage, unreachable, full queue), and `completions`.

use crate::common::TestApp;
use crate::{cli, run_cli, submit};

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
