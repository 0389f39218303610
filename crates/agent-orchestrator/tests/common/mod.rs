//! Test harness: an orchestrator on 127.0.0.1:0 with a fresh SQLite file and script workers.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use agent_orchestrator::cli::{Cli, Command};
use agent_orchestrator::config::ServeArgs;
use clap::Parser;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub const BIN: &str = env!("CARGO_BIN_EXE_agent-orchestrator");

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    pub token: Option<String>,
}

/// An HTTP client (reqwest needs a TLS provider installed, even for plain HTTP).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Write an executable shell script into `dir`.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// A worker that prints, sleeps `$SLEEP` seconds (default 0) and exits `$EXIT` (default 0).
pub const SCRIPT_WORKER: &str = r#"echo "start $AO_TASK_ID"
echo "line two"
i=0
while [ "$i" -lt "${SLEEP:-0}" ]; do sleep 1; i=$((i+1)); done
echo "done"
exit "${EXIT:-0}""#;

pub fn serve_args(dir: &Path, worker: &Path, extra: &[&str]) -> ServeArgs {
    let mut argv: Vec<String> = vec![
        "agent-orchestrator".into(),
        "serve".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--data-dir".into(),
        dir.join("data").to_string_lossy().into(),
        "--worker-command".into(),
        worker.to_string_lossy().into(),
        "--supervisor-bin".into(),
        BIN.into(),
        "--stop-grace".into(),
        "2".into(),
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Serve(a) => *a,
        _ => unreachable!(),
    }
}

impl TestApp {
    pub async fn spawn(extra: &[&str]) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let worker = script(dir.path(), "worker.sh", SCRIPT_WORKER);
        let args = serve_args(dir.path(), &worker, extra);
        Self::spawn_with(dir, args).await
    }

    pub async fn spawn_with(dir: tempfile::TempDir, args: ServeArgs) -> TestApp {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tokens = agent_orchestrator::serve::load_tokens(&args).unwrap();
        let token = args.api_tokens.first().cloned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let handle = agent_orchestrator::serve::start(args, tokens, listener, shutdown.clone())
            .await
            .unwrap();
        TestApp {
            base,
            client: reqwest::Client::new(),
            dir,
            shutdown,
            handle,
            token,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn auth(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    pub async fn post_json(&self, path: &str, body: Value) -> reqwest::Response {
        self.auth(self.client.post(self.url(path)).json(&body))
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.auth(self.client.get(self.url(path)))
            .send()
            .await
            .unwrap()
    }

    /// Submit a task; panics unless it is accepted.
    pub async fn submit(&self, body: Value) -> String {
        let r = self.post_json("/api/v1/tasks", body).await;
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn task(&self, id: &str) -> Value {
        let r = self.get(&format!("/api/v1/tasks/{id}")).await;
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    pub async fn cancel(&self, id: &str) -> reqwest::Response {
        self.auth(
            self.client
                .post(self.url(&format!("/api/v1/tasks/{id}/cancel"))),
        )
        .send()
        .await
        .unwrap()
    }

    /// Wait until the task's status satisfies `pred` (bounded; panics after `secs`).
    pub async fn wait_for(&self, id: &str, secs: u64, pred: impl Fn(&str) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let t = self.task(id).await;
            if pred(t["status"].as_str().unwrap()) {
                return t;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "task {id} stuck: {t:#}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn wait_terminal(&self, id: &str) -> Value {
        self.wait_for(id, 30, |s| {
            matches!(s, "succeeded" | "failed" | "cancelled" | "timed_out")
        })
        .await
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.handle.await.unwrap().unwrap();
    }
}

/// The server binary as a child process (for crash and restart tests), killed on drop.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub base: String,
}

impl ServerProcess {
    /// Start `agent-orchestrator serve --listen 127.0.0.1:0 --log-format json <args>` with
    /// extra environment, and wait for its "listening" log line.
    pub fn start(args: &[&std::ffi::OsStr], env: &[(&str, &std::ffi::OsStr)]) -> ServerProcess {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("server exited before listening")
                .unwrap();
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if v["message"] == "listening" {
                break v["addr"].as_str().unwrap().to_string();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        ServerProcess {
            child,
            base: format!("http://{addr}"),
        }
    }

    /// GET a task.
    pub async fn task(&self, c: &reqwest::Client, id: &str) -> Value {
        c.get(format!("{}/api/v1/tasks/{id}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Wait (bounded) until the task's status is one of `want`.
    pub async fn wait_status(&self, c: &reqwest::Client, id: &str, want: &[&str]) -> Value {
        for _ in 0..600 {
            let t = self.task(c, id).await;
            if want.contains(&t["status"].as_str().unwrap()) {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "task {id} never reached {want:?}: {:#}",
            self.task(c, id).await
        );
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every terminal status.
pub const TERMINAL: &[&str] = &["succeeded", "failed", "cancelled", "timed_out"];

/// The pid of a local worker, from its task's `worker.name` (`pid-N`).
pub fn worker_pid(task: &Value) -> i32 {
    task["worker"]["name"]
        .as_str()
        .unwrap()
        .trim_start_matches("pid-")
        .parse()
        .unwrap()
}

/// True while the process runs (a zombie counts as gone).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.rsplit(')').next().unwrap().trim_start().starts_with('Z'))
        .unwrap_or(false)
}
