//! The real `agent-orchestrator serve --runtime kubernetes` binary as a child process,
//! authenticated by the kubeconfig it is given (a ServiceAccount token), and the few calls of
//! its task API the watch tests make. Every wait is bounded; the process is killed on drop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_agent-orchestrator");

const TERMINAL: &[&str] = &["succeeded", "failed", "cancelled", "timed_out"];

/// How one orchestrator is started.
pub struct Opts<'a> {
    /// Where the worker pods go (`--k8s-namespace`).
    pub namespace: &'a str,
    pub image: &'a str,
    /// A kubeconfig of the orchestrator's ServiceAccount.
    pub kubeconfig: &'a Path,
    pub anthropic_base_url: &'a str,
    /// Data dir and HOME live in here.
    pub dir: &'a Path,
    pub max_concurrency: usize,
    /// More `serve` flags.
    pub extra: &'a [&'a str],
    /// Listen on this port (a restart keeps the address its pods call back on), else a free one.
    pub port: Option<u16>,
}

pub struct Orchestrator {
    child: Child,
    pub base: String,
    /// Every stderr line (JSON) so far.
    log: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
}

impl Orchestrator {
    /// Starts the binary and waits (at most 60 s) for its "listening" line. Workers call
    /// back on the same address, so the port is chosen first.
    pub fn start(o: &Opts<'_>) -> Orchestrator {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let port = o.port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port()
        });
        let listen = format!("127.0.0.1:{port}");
        // Another build's binary may serve, to measure it against this one (the image keeps
        // this build's worker).
        let bin = std::env::var_os("AO_KUBE_WATCH_SERVE_BIN").unwrap_or_else(|| BIN.into());
        let mut child = Command::new(bin)
            .args(["serve", "--runtime", "kubernetes", "--log-format", "json"])
            .args([
                "--listen",
                &listen,
                "--callback-url",
                &format!("http://{listen}"),
            ])
            .args(["--k8s-namespace", o.namespace, "--worker-image", o.image])
            .args(["--worker-anthropic-base-url", o.anthropic_base_url])
            .args(["--max-concurrency", &o.max_concurrency.to_string()])
            .args(["--stop-grace", "5"])
            .args(o.extra)
            .arg("--data-dir")
            .arg(o.dir.join("data"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", o.dir)
            .env("KUBECONFIG", o.kubeconfig)
            .env("AO_KUBECONFIG", "")
            .env("AO_LOG", "info,ao_runtime_kube=debug,ao_core=debug")
            .env("AO_PERMISSION_MODE", "bypassPermissions")
            .env("CLAUDE_CODE_MAX_RETRIES", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start agent-orchestrator serve");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let stderr = child.stderr.take().expect("stderr");
        let sink = log.clone();
        // Drains stderr for the server's life, keeping every line.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("\"listening\"")
                    && let Some(t) = tx.take()
                {
                    let _ = t.send(());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let mut orch = Orchestrator {
            child,
            base: format!("http://{listen}"),
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
        };
        if let Err(e) = rx.recv_timeout(Duration::from_secs(60)) {
            let _ = orch.child.kill();
            panic!(
                "the orchestrator never logged \"listening\" ({e}):\n{}",
                orch.tail(60)
            );
        }
        orch
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port")
    }

    /// Sends SIGTERM and waits (at most `secs`) for the process to exit; returns whether it
    /// exited with success.
    pub fn terminate(&mut self, secs: u64) -> bool {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "the orchestrator did not exit within {secs} s of SIGTERM:\n{}",
                self.tail(40)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last `n` log lines, for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let log = self.log.lock().unwrap();
        let skip = log.len().saturating_sub(n);
        log[skip..].join("\n")
    }

    /// Log lines (JSON) whose `message` is `msg`.
    pub fn logged(&self, msg: &str) -> Vec<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"] == msg || v["fields"]["message"] == msg)
            .collect()
    }

    /// Submits a task; panics unless it is accepted. Returns its id.
    pub async fn submit(&self, prompt: &str) -> String {
        let r = self
            .http
            .post(format!("{}/api/v1/tasks", self.base))
            .json(&json!({ "prompt": prompt }))
            .send()
            .await
            .expect("POST /api/v1/tasks");
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 202, "submit: {v}");
        v["id"].as_str().expect("task id").to_owned()
    }

    /// GET the task. A keep-alive connection the server closed just as the request went out
    /// is retried (twice); anything else fails the test.
    pub async fn task(&self, id: &str) -> Value {
        let url = format!("{}/api/v1/tasks/{id}", self.base);
        let mut tries = 0;
        loop {
            tries += 1;
            match self.http.get(&url).send().await {
                Ok(r) => return r.json().await.expect("task JSON"),
                Err(e) if tries < 3 && e.is_request() => {
                    eprintln!("GET task {id}: {e}; retrying");
                }
                Err(e) => panic!("GET task {id}: {e:?}"),
            }
        }
    }

    /// The task's stored log (the worker's JSON lines, read from the pod's log stream).
    pub async fn logs(&self, id: &str) -> String {
        self.http
            .get(format!("{}/api/v1/tasks/{id}/logs", self.base))
            .send()
            .await
            .expect("GET logs")
            .text()
            .await
            .expect("logs text")
    }

    /// The `seq` numbers of the worker's event lines in the task's stored log, in order.
    pub async fn log_seqs(&self, id: &str) -> Vec<u64> {
        self.logs(id)
            .await
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["seq"].as_u64())
            .collect()
    }

    /// Polls the task (every 100 ms) until it is terminal; panics after `secs`.
    pub async fn wait_terminal(&self, id: &str, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let t = self.task(id).await;
            if TERMINAL.contains(&t["status"].as_str().unwrap_or("")) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "task {id} not finished within {secs} s: {t:#}\norchestrator log:\n{}",
                self.tail(80)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for every task, and checks each ended `succeeded`/`answered` with the agent's
    /// answer: it ran in its pod and reported through the callback.
    pub async fn assert_all_answered(&self, ids: &[String], secs: u64) {
        for id in ids {
            let t = self.wait_terminal(id, secs).await;
            assert_eq!(
                (t["status"].as_str(), t["reason"].as_str()),
                (Some("succeeded"), Some("answered")),
                "task {id}: {t:#}\norchestrator log:\n{}",
                self.tail(80)
            );
            assert_eq!(t["result"]["summary"], crate::world::ANSWER, "{t:#}");
            assert_eq!(t["worker"]["runtime"], "kubernetes", "{t:#}");
        }
    }
}

impl Drop for Orchestrator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
