//! The real `agent-orchestrator serve --runtime kubernetes` binary as a child process,
//! authenticated with the test's ServiceAccount kubeconfig (never admin), plus the task API
//! calls the tests make. Worker pods call back to it on loopback, so it listens on a port
//! chosen before it starts; a restart (after `kill -9`) reuses the port and the data dir, as
//! a restarted Deployment pod reuses its Service and volume.
//!
//! Every wait is bounded and names what it waited for; stderr (JSON log lines) is kept and
//! its tail is shown when a wait times out.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::cluster::Cluster;

pub const BIN: &str = env!("CARGO_BIN_EXE_agent-orchestrator");
pub const TERMINAL: &[&str] = &["succeeded", "failed", "cancelled", "timed_out"];

/// How to start the orchestrator.
#[derive(Clone)]
pub struct Opts {
    /// `--worker-image`.
    pub image: String,
    /// Extra `serve` arguments.
    pub args: Vec<String>,
    /// Extra environment (worker settings copied to pods, e.g. `AO_GITHUB_API_URL`).
    pub env: Vec<(String, String)>,
}

/// A running (or killed) orchestrator.
pub struct Orchestrator {
    child: Option<Child>,
    argv: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    pub base: String,
    pub data_dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Orchestrator {
    pub fn start(cluster: &Cluster, opts: Opts) -> Orchestrator {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::Builder::new()
            .prefix("ao-kube-orch-")
            .tempdir()
            .expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let listen = format!("127.0.0.1:{port}");
        let data_dir = dir.path().join("data");
        let mut argv: Vec<OsString> = [
            "serve",
            "--runtime",
            "kubernetes",
            "--log-format",
            "json",
            "--listen",
            &listen,
            "--callback-url",
            &format!("http://{listen}"),
            "--k8s-namespace",
            &cluster.ns,
            "--worker-image",
            &opts.image,
            "--worker-image-pull-policy",
            "IfNotPresent",
            "--data-dir",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        argv.push(data_dir.clone().into());
        argv.extend(opts.args.iter().map(OsString::from));
        let mut envs: Vec<(OsString, OsString)> = vec![
            ("PATH".into(), std::env::var_os("PATH").unwrap_or_default()),
            ("HOME".into(), dir.path().into()),
            ("KUBECONFIG".into(), cluster.kubeconfig.clone().into()),
            ("AO_KUBECONFIG".into(), "".into()),
            (
                "AO_LOG".into(),
                "info,ao_runtime_kube=debug,ao_core=debug".into(),
            ),
        ];
        envs.extend(opts.env.iter().map(|(k, v)| (k.into(), v.into())));
        let mut o = Orchestrator {
            child: None,
            argv,
            envs,
            base: format!("http://{listen}"),
            data_dir,
            log: Arc::new(Mutex::new(Vec::new())),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            _dir: dir,
        };
        o.spawn();
        o
    }

    fn spawn(&mut self) {
        let mut child = Command::new(BIN)
            .args(&self.argv)
            .env_clear()
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start agent-orchestrator serve");
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = self.log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                if v["message"] == "listening"
                    && let Some(t) = tx.take()
                {
                    let _ = t.send(());
                }
                sink.lock().expect("log lock").push(line);
            }
        });
        self.child = Some(child);
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            self.kill();
            panic!(
                "agent-orchestrator never logged \"listening\":\n{}",
                self.log_tail(60)
            );
        }
    }

    /// `kill -9`, as a crash (or a node loss) would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again with the same flags, port and data dir.
    pub fn restart(&mut self) {
        self.kill();
        self.log
            .lock()
            .expect("log lock")
            .push("---- restarted ----".into());
        self.spawn();
    }

    /// The last `n` lines the orchestrator printed.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().expect("log lock");
        log[log.len().saturating_sub(n)..].join("\n")
    }

    /// Wait until the orchestrator printed a JSON log line with this `message` and `task_id`;
    /// panics after `secs`.
    pub async fn wait_log_line(&self, task_id: &str, message: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let found = || {
            self.log.lock().expect("log lock").iter().any(|l| {
                let v: Value = serde_json::from_str(l).unwrap_or(Value::Null);
                v["message"] == message && v["task_id"] == task_id
            })
        };
        while !found() {
            assert!(
                Instant::now() < deadline,
                "the orchestrator never logged {message:?} for task {task_id} within {secs} s:\n{}",
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut rb = self.http.post(format!("{}{path}", self.base));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let code = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let code = r.status().as_u16();
        (code, r.text().await.unwrap_or_default())
    }

    /// Submit a task on `/api/v1/tasks`; panics unless it is accepted. Returns its id.
    pub async fn submit(&self, body: Value) -> String {
        let (code, v) = self.post("/api/v1/tasks", Some(body)).await;
        assert_eq!(code, 202, "submit: {v}");
        v["id"].as_str().expect("task id").to_owned()
    }

    pub async fn task(&self, id: &str) -> Value {
        let (code, body) = self.get_text(&format!("/api/v1/tasks/{id}")).await;
        assert_eq!(code, 200, "GET task {id}: {body}");
        serde_json::from_str(&body).expect("task JSON")
    }

    pub async fn cancel(&self, id: &str) -> (u16, Value) {
        self.post(&format!("/api/v1/tasks/{id}/cancel"), None).await
    }

    pub async fn logs(&self, id: &str) -> String {
        let (code, body) = self.get_text(&format!("/api/v1/tasks/{id}/logs")).await;
        assert_eq!(code, 200, "{body}");
        body
    }

    pub async fn events(&self, id: &str) -> String {
        let path = format!("/api/v1/tasks/{id}/events?follow=false");
        let (code, body) = self.get_text(&path).await;
        assert_eq!(code, 200, "{body}");
        body
    }

    /// Poll the task API (the orchestrator's own state, not the cluster) until `done(status)`;
    /// panics after `secs` with the task and the orchestrator's log tail.
    pub async fn wait_until(&self, id: &str, secs: u64, done: impl Fn(&str) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let t = self.task(id).await;
            if done(t["status"].as_str().unwrap_or("")) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "task {id} did not get there within {secs} s: {t:#}\norchestrator log:\n{}",
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_terminal(&self, id: &str, secs: u64) -> Value {
        self.wait_until(id, secs, |s| TERMINAL.contains(&s)).await
    }
}

impl Drop for Orchestrator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `(status, reason)` of a task.
pub fn status_reason(t: &Value) -> (&str, &str) {
    (
        t["status"].as_str().unwrap_or(""),
        t["reason"].as_str().unwrap_or(""),
    )
}
