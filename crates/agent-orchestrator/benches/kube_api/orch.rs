//! The real `agent-orchestrator serve --runtime kubernetes` binary as a child process,
//! authenticated with the measurement's ServiceAccount kubeconfig (adapted from
//! `tests/kube_product/support/orchestrator.rs`), plus what the bench reads from it: its
//! JSON log lines (to time a restart's recovery), its RSS from `/proc`, and task counts by
//! status from `/metrics`.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::cluster::Cluster;

pub const BIN: &str = env!("CARGO_BIN_EXE_agent-orchestrator");

/// A JSON log line with when the bench read it.
type Line = (Instant, Value);

pub struct Orchestrator {
    child: Option<Child>,
    argv: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    pub base: String,
    log: Arc<Mutex<Vec<Line>>>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Orchestrator {
    /// Start it over `cluster` with worker image `image` and extra `serve` arguments; returns
    /// once it logged `listening`.
    pub fn start(cluster: &Cluster, image: &str, args: &[String]) -> Orchestrator {
        let dir = tempfile::Builder::new()
            .prefix("ao-kube-bench-orch-")
            .tempdir()
            .expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let listen = format!("127.0.0.1:{port}");
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
            image,
            "--worker-image-pull-policy",
            "IfNotPresent",
            "--require-result",
            "false",
            "--data-dir",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        argv.push(dir.path().join("data").into());
        argv.extend(args.iter().map(OsString::from));
        let envs: Vec<(OsString, OsString)> = vec![
            ("PATH".into(), std::env::var_os("PATH").unwrap_or_default()),
            ("HOME".into(), dir.path().into()),
            ("KUBECONFIG".into(), cluster.kubeconfig.clone().into()),
            ("AO_LOG".into(), "info".into()),
        ];
        let mut o = Orchestrator {
            child: None,
            argv,
            envs,
            base: format!("http://{listen}"),
            log: Arc::new(Mutex::new(Vec::new())),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(64)
                .build()
                .expect("http client"),
            _dir: dir,
        };
        o.spawn();
        o
    }

    fn spawn(&mut self) {
        let from = self.log.lock().expect("log lock").len();
        let mut child = Command::new(BIN)
            .args(&self.argv)
            .env_clear()
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start agent-orchestrator serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line).unwrap_or(Value::String(line));
                sink.lock().expect("log lock").push((Instant::now(), v));
            }
        });
        self.child = Some(child);
        self.wait_logged_from(from, "listening", Duration::from_secs(120));
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `kill -9`, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `kill -9`, then start again with the same flags, port and data dir. Returns when the
    /// new process was spawned (before it listens) and the index its log lines start at.
    pub fn crash_and_restart(&mut self) -> (Instant, usize) {
        self.kill();
        let from = self.log.lock().expect("log lock").len();
        let at = Instant::now();
        self.spawn();
        (at, from)
    }

    /// Change the value of `serve` flag `flag` for the next start (after a restart).
    pub fn set_arg(&mut self, flag: &str, value: &str) {
        let i = self
            .argv
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("{flag} is not among the serve arguments"));
        self.argv[i + 1] = value.into();
    }

    /// The first log line from index `from` on whose `message` is `msg`, waited for.
    pub fn wait_logged_from(&self, from: usize, msg: &str, limit: Duration) -> Line {
        let deadline = Instant::now() + limit;
        loop {
            {
                let log = self.log.lock().expect("log lock");
                let found = log[from.min(log.len())..]
                    .iter()
                    .find(|(_, v)| v["message"] == msg);
                if let Some(l) = found {
                    return l.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "the orchestrator never logged {msg:?} within {limit:?}:\n{}",
                self.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log.lock().expect("log lock");
        log[log.len().saturating_sub(n)..]
            .iter()
            .map(|(_, v)| v.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Resident set size of the process, in KiB (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// Submit a task; panics unless it is accepted. Returns its id.
    pub async fn submit(&self, body: &Value) -> String {
        let r = self
            .http
            .post(format!("{}/api/v1/tasks", self.base))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /api/v1/tasks: {e}"));
        let code = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(code, 202, "submit: {v}");
        v["id"].as_str().expect("task id").to_owned()
    }

    /// Submit `n` tasks, `parallel` requests at a time.
    pub async fn submit_many(&self, n: usize, parallel: usize) -> Vec<String> {
        use futures::StreamExt;
        let body = serde_json::json!({"prompt": "kube_api bench: exit 0", "timeout_seconds": 3600});
        futures::stream::iter(0..n)
            .map(|_| self.submit(&body))
            .buffer_unordered(parallel)
            .collect()
            .await
    }

    pub async fn task(&self, id: &str) -> Value {
        let url = format!("{}/api/v1/tasks/{id}", self.base);
        let r = self.http.get(url).send().await.expect("GET task");
        r.json().await.expect("task JSON")
    }

    /// `ao_tasks{status="<status>"}` from `/metrics`.
    pub async fn count(&self, status: &str) -> u64 {
        let url = format!("{}/metrics", self.base);
        let text = self.http.get(url).send().await.expect("GET /metrics");
        let text = text.text().await.expect("metrics body");
        let key = format!("ao_tasks{{status=\"{status}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Poll `/metrics` until `n` tasks are `status`; panics after `limit`.
    pub async fn wait_count(&self, status: &str, n: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let c = self.count(status).await;
            if c >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {c} of {n} tasks {status} after {limit:?}:\n{}",
                self.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Orchestrator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A path under the env's folder (so pods can reach it).
pub fn scratch(name: &str) -> PathBuf {
    let dir = ao_kube_testenv::env().dir.join("kube-bench");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.join(format!("{name}-{}", std::process::id()))
}
