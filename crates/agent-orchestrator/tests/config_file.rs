//! The TOML config file (`AO_CONFIG` / `--config`) through the real binary: it never changes
//! how another subcommand parses (`tasks submit serve` is a task whose prompt is "serve"),
//! and for `serve` its values apply unless the environment or the command line give the
//! option (flag > environment > file > default).

mod common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::{BIN, TestApp};

const RUN_LIMIT: Duration = Duration::from_secs(60);

fn config_file(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("orchestrator.toml");
    std::fs::write(&path, text).unwrap();
    path
}

async fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .env_remove("AO_CONFIG")
        .env_remove("AO_LISTEN")
        .env_remove("AO_API_TOKENS")
        .env_remove("AO_API_TOKENS_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn the binary");
    tokio::time::timeout(RUN_LIMIT, child.wait_with_output())
        .await
        .expect("the binary ends")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_does_not_change_how_tasks_submit_parses() {
    let app = TestApp::spawn(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), "max-concurrency = 7\nlisten = \"0.0.0.0:0\"\n");
    let out = run(
        &["tasks", "submit", "-o", "json", "serve"],
        &[("AO_CONFIG", cfg.to_str().unwrap()), ("AO_URL", &app.base)],
    )
    .await;
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = body["id"].as_str().expect("an id");
    assert_eq!(app.task(id).await["prompt"], "serve");
    app.stop().await;
}

/// Arguments, environment, and the listen address `serve` should end up with.
type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

/// `serve` refuses a non-loopback listen address without tokens, naming the address: which
/// address it names shows which source won.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_the_file_unless_env_or_flags_say_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), "listen = \"0.0.0.0:1\"\n");
    let cfg = cfg.to_str().unwrap();
    let cases: [Case; 4] = [
        (&["serve", "--config", cfg], &[], "0.0.0.0:1"),
        (&["serve"], &[("AO_CONFIG", cfg)], "0.0.0.0:1"),
        (
            &["serve", "--config", cfg],
            &[("AO_LISTEN", "0.0.0.0:2")],
            "0.0.0.0:2",
        ),
        (
            &["serve", "--config", cfg, "--listen", "0.0.0.0:3"],
            &[("AO_LISTEN", "0.0.0.0:2")],
            "0.0.0.0:3",
        ),
    ];
    for (args, env, want) in cases {
        let out = run(args, env).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.contains(&format!("refusing to listen on {want} without API tokens")),
            "{args:?} {env:?}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_value_in_the_file_names_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), "max-concurrency = \"many\"\n");
    let out = run(&["serve", "--config", cfg.to_str().unwrap()], &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("orchestrator.toml") && stderr.contains("max-concurrency"),
        "{stderr}"
    );
}
