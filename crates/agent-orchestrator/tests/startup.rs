//! Starting the server binary: exposure rules, token files and the TOML config file.

mod common;

use std::process::Command;

use common::{BIN, ServerProcess};

#[test]
fn refuses_to_listen_beyond_loopback_without_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("AO_API_TOKENS")
        .env_remove("AO_API_TOKENS_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without API tokens"),
        "{err}"
    );
}

#[test]
fn short_or_missing_token_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("tokens");
    std::fs::write(&f, "# only a comment\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:0", "--api-tokens-file"])
        .arg(&f)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no token"));
    std::fs::write(&f, "short\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--api-tokens-file"])
        .arg(&f)
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16 characters"));
}

#[tokio::test]
async fn token_file_and_config_file_take_effect() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "# ops\nfile-token-0123456789abcdef\n").unwrap();
    let cfg = dir.path().join("ao.toml");
    std::fs::write(&cfg, "max-queued = 1\nmax-concurrency = 1\nworker-command = \"/bin/sleep\"\nworker-arg = [\"5\"]\n").unwrap();
    let data = dir.path().join("data");
    let mut s = ServerProcess::start(
        &[
            "--config".as_ref(),
            cfg.as_os_str(),
            "--data-dir".as_ref(),
            data.as_os_str(),
        ],
        &[("AO_API_TOKENS_FILE", tokens.as_os_str())],
    );
    let c = common::client();
    let post = |auth: bool| {
        let mut rb = c
            .post(format!("{}/api/v1/tasks", s.base))
            .json(&serde_json::json!({"prompt": "p"}));
        if auth {
            rb = rb.bearer_auth("file-token-0123456789abcdef");
        }
        rb.send()
    };
    assert_eq!(post(false).await.unwrap().status(), 401);
    assert_eq!(post(true).await.unwrap().status(), 202);
    // One running (max-concurrency 1 from the file), one queued, then the bound from the file.
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(post(true).await.unwrap().status().as_u16());
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    assert!(
        codes.contains(&429),
        "max-queued from the config file was not applied: {codes:?}"
    );
    s.kill();
}
