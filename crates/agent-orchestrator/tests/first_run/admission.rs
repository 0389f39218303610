//! Admission while Claude Code is missing, and once it is there, without a restart.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use ao_testkit::{FakeAnthropic, Script, Turn};
use serde_json::{Value, json};

use crate::common::{BIN, client};
use crate::server::Server;

const KEY: &str = "sk-ant-admission-90b2f5c3e8";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_wait_for_claude_code_and_run_once_it_is_installed() {
    let anthropic =
        FakeAnthropic::start(Script::new().api_key(KEY).turn(Turn::text_only("Hello!"))).await;
    let dir = tempfile::tempdir().unwrap();
    // Where the user will install Claude Code; nothing there yet.
    let bin = dir.path().join("tools/claude");
    let s = |v: &dyn AsRef<std::ffi::OsStr>| v.as_ref().to_owned();
    let env: Vec<(String, OsString)> = vec![
        ("PATH".into(), s(&"/usr/bin:/bin")),
        ("HOME".into(), s(&dir.path())),
        ("AO_CLAUDE_BIN".into(), s(&bin)),
        ("ANTHROPIC_API_KEY".into(), s(&KEY)),
        ("ANTHROPIC_BASE_URL".into(), s(&anthropic.base_url())),
        ("AO_LOG_FORMAT".into(), s(&"json")),
    ];
    let data = dir.path().join("data");
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let server = Server::start(
        Path::new(BIN),
        &args,
        dir.path(),
        &env,
        Duration::from_secs(60),
    );
    let c = client();
    let post = |route: &'static str| {
        c.post(format!("{}{route}", server.base))
            .header("idempotency-key", "first-task")
            .json(&json!({"prompt": "Say hello"}))
            .send()
    };

    for route in ["/api/v1/tasks", "/api/tasks"] {
        let r = post(route).await.unwrap();
        assert_eq!(r.status(), 503, "{route}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "agent_unavailable", "{body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("Claude Code not found at") && msg.contains("scripts/install-claude.sh"),
            "{msg}"
        );
    }
    // The CLI says it in one line, with the fix.
    let cli = std::process::Command::new(BIN)
        .args(["tasks", "submit", "Say hello"])
        .env("AO_URL", &server.base)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&cli.stderr);
    assert_eq!(cli.status.code(), Some(9), "{said}");
    assert!(
        said.contains("the built-in agent cannot run on this server")
            && said.contains("fix: run `scripts/install-claude.sh`"),
        "{said}"
    );
    let list: Value = c
        .get(format!("{}/api/v1/tasks", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], json!([]), "a refused task was stored");

    // Start-up said it, once, with the fix; /readyz says it too.
    let warned = |server: &Server| -> Vec<Value> {
        let w = server.warnings();
        w.into_iter()
            .filter(|w| w["check"] == "claude_code")
            .collect()
    };
    for _ in 0..100 {
        if !warned(&server).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let warned = warned(&server);
    assert_eq!(warned.len(), 1, "{warned:#?}");
    assert!(
        warned[0]["fix"]
            .as_str()
            .unwrap()
            .contains("scripts/install-claude.sh")
    );
    let ready = c
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "degraded", "{ready}");
    let claude = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "claude_code")
        .unwrap();
    assert_eq!(claude["status"], "fail", "{ready}");
    assert!(!ready.to_string().contains(KEY), "{ready}");

    // The user installs it; the server notices by itself.
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(ao_testkit::claude_bin(), &bin).unwrap();
    let mut accepted = None;
    for _ in 0..50 {
        let r = post("/api/v1/tasks").await.unwrap();
        if r.status() == 202 {
            accepted = Some(r);
            break;
        }
        assert_eq!(r.status(), 503);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let task: Value = accepted
        .expect("still refused 5 s after Claude Code was installed")
        .json()
        .await
        .unwrap();
    let id = task["id"].as_str().unwrap().to_owned();
    let done = finished(&c, &server, &id).await;
    assert_eq!(
        (done["status"].as_str(), done["reason"].as_str()),
        (Some("succeeded"), Some("answered")),
        "{done:#}"
    );
    let ready = c
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    let ready = ready.text().await.unwrap();
    assert!(!ready.contains(r#""status":"degraded""#), "{ready}");
}

/// The issue's first symptom, from the other side: a worker that cannot start Claude Code (here
/// the built-in worker given as a custom `--worker-command`, so nothing gates it) ends the
/// task `failed`/`agent_unavailable` with the fix, no longer `agent_error`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_its_agent_ends_agent_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let s = |v: &dyn AsRef<std::ffi::OsStr>| v.as_ref().to_owned();
    let env: Vec<(String, OsString)> = vec![
        ("PATH".into(), s(&"/usr/bin:/bin")),
        ("HOME".into(), s(&dir.path())),
        ("AO_CLAUDE_BIN".into(), s(&dir.path().join("no-claude"))),
        ("ANTHROPIC_API_KEY".into(), s(&KEY)),
        ("AO_LOG_FORMAT".into(), s(&"json")),
    ];
    let data = dir.path().join("data");
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--worker-command",
        BIN,
        "--worker-arg",
        "worker",
        "--require-result",
        "true",
    ];
    let server = Server::start(
        Path::new(BIN),
        &args,
        dir.path(),
        &env,
        Duration::from_secs(60),
    );
    let c = client();
    let r = c
        .post(format!("{}/api/v1/tasks", server.base))
        .json(&json!({"prompt": "Say hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "a custom worker command is not gated");
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = finished(&c, &server, &id).await;
    assert_eq!(
        (done["status"].as_str(), done["reason"].as_str()),
        (Some("failed"), Some("agent_unavailable")),
        "{done:#}"
    );
    let error = done["result"]["error"].as_str().unwrap();
    assert!(
        error.contains("Claude Code not found at") && error.contains("scripts/install-claude.sh"),
        "{error}"
    );
}

/// The task once it has finished (bounded: 60 s).
async fn finished(c: &reqwest::Client, server: &Server, id: &str) -> Value {
    let mut t = Value::Null;
    for _ in 0..600 {
        t = c
            .get(format!("{}/api/v1/tasks/{id}", server.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if t["finished_at"].is_string() {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("task {id} did not finish: {t:#}");
}
