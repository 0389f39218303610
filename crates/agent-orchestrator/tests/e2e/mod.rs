//! Harness for the end-to-end tests: the real `agent-orchestrator serve` binary as a
//! subprocess (default agent worker, real Claude Code CLI), pointed at the test fakes, plus
//! helpers to read its API (every response body is kept for the leak check), parse SSE,
//! inspect processes and scan everything the orchestrator wrote for secret values.
//!
//! Every wait is bounded. A `Server` kills its process (and any worker group it started that
//! still runs) when dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ao_testkit::{FakeAnthropic, FakeGitHub};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_agent-orchestrator");

/// The `owner/repo` the orchestrator's workers open pull requests on.
pub const GITHUB_REPO: &str = "owner/repo";

pub const TERMINAL: &[&str] = &["succeeded", "failed", "cancelled", "timed_out"];

/// A distinctive random value: `prefix` + 32 hex digits from the kernel's CSPRNG.
pub fn secret(prefix: &str) -> String {
    let mut buf = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// The two secrets the orchestrator is started with.
#[derive(Clone)]
pub struct Secrets {
    pub anthropic_key: String,
    pub github_token: String,
}

impl Secrets {
    pub fn new() -> Self {
        Secrets {
            anthropic_key: secret("sk-ant-e2e-"),
            github_token: secret("ghp_e2e"),
        }
    }
}

/// Options for one orchestrator.
pub struct Opts<'a> {
    /// `AO_ALLOWED_TOOLS` (server-wide; passed through to every worker).
    pub allowed_tools: &'a str,
    pub max_concurrency: u32,
    /// `--worker-user`: local workers run as this user (the orchestrator must be root).
    pub worker_user: Option<&'a str>,
}

/// A running `agent-orchestrator serve`.
pub struct Server {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    _dir: tempfile::TempDir,
    /// Every stderr line (JSON log lines) the server printed so far.
    pub log: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
    /// Every API response body read through this harness.
    bodies: Mutex<Vec<String>>,
    /// Secret values to look for: the two configured ones plus callback tokens observed in
    /// worker environments.
    secrets: Mutex<Vec<(String, String)>>,
    /// Worker (supervisor) pids seen, to make sure none outlives the test.
    worker_pids: Mutex<Vec<i32>>,
    /// Task ids submitted through this harness.
    pub tasks: Mutex<Vec<String>>,
}

impl Server {
    /// Starts the binary with the fakes' addresses and the secrets in its environment, on
    /// `127.0.0.1:0`, and waits for its "listening" log line.
    pub fn start(
        anthropic: &FakeAnthropic,
        github: &FakeGitHub,
        s: &Secrets,
        opts: Opts<'_>,
    ) -> Server {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::Builder::new()
            .prefix("ao-e2e-")
            .tempdir()
            .unwrap();
        let data_dir = dir.path().join("data");
        let claude = ao_testkit::claude_bin();
        let mut cmd = Command::new(BIN);
        cmd.arg("serve");
        if let Some(user) = opts.worker_user {
            // The worker user passes through to its folder under the data dir.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
            cmd.args(["--worker-user", user]);
        }
        let mut child = cmd
            .args([
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--stop-grace",
                "8",
            ])
            .arg("--max-concurrency")
            .arg(opts.max_concurrency.to_string())
            .arg("--data-dir")
            .arg(&data_dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env(
                "AO_LOG",
                "info,agent_orchestrator=debug,ao_api=debug,ao_core=debug,ao_runtime_local=debug",
            )
            .env("AO_LOG_FORMAT", "json")
            .env("ANTHROPIC_BASE_URL", anthropic.base_url())
            .env("ANTHROPIC_API_KEY", &s.anthropic_key)
            .env("GITHUB_TOKEN", &s.github_token)
            .env("AO_CLAUDE_BIN", &claude)
            .env("AO_GITHUB_API_URL", github.api_url())
            .env("AO_GITHUB_REPO", GITHUB_REPO)
            .env("AO_ALLOWED_TOOLS", opts.allowed_tools)
            .env("CLAUDE_CODE_MAX_RETRIES", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start agent-orchestrator");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        // Drains stderr for the server's whole life (so it never blocks on a full pipe) and
        // keeps every line for the leak check.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(t) = &tx {
                    let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                    if v["message"] == "listening"
                        && let Some(addr) = v["addr"].as_str()
                    {
                        let _ = t.send(addr.to_owned());
                        tx = None;
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "server never logged \"listening\" ({e}); stderr: {:#?}",
                    log.lock().unwrap()
                );
            }
        };
        let secrets = vec![
            ("ANTHROPIC_API_KEY".to_owned(), s.anthropic_key.clone()),
            ("GITHUB_TOKEN".to_owned(), s.github_token.clone()),
            (
                "GITHUB_TOKEN (basic auth form)".to_owned(),
                STANDARD.encode(format!("x-access-token:{}", s.github_token).as_bytes()),
            ),
        ];
        Server {
            child,
            base: format!("http://{addr}"),
            data_dir,
            _dir: dir,
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            bodies: Mutex::new(Vec::new()),
            secrets: Mutex::new(secrets),
            worker_pids: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn keep(&self, body: &str) {
        self.bodies.lock().unwrap().push(body.to_owned());
    }

    /// GET, returning status and body text (kept for the leak check).
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = r.status().as_u16();
        let body = r
            .text()
            .await
            .unwrap_or_else(|e| panic!("GET {path} body: {e}"));
        self.keep(&body);
        (status, body)
    }

    pub async fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get_text(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut rb = self.http.post(self.url(path));
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        self.keep(&text);
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Submits a task; panics unless it is accepted. Returns its id.
    pub async fn submit(&self, body: Value) -> String {
        let (status, v) = self.post("/api/v1/tasks", Some(body)).await;
        assert_eq!(status, 202, "submit: {v}");
        let id = v["id"].as_str().expect("task id").to_owned();
        self.tasks.lock().unwrap().push(id.clone());
        id
    }

    pub async fn task(&self, id: &str) -> Value {
        self.get_json(&format!("/api/v1/tasks/{id}")).await
    }

    pub async fn cancel(&self, id: &str) -> (u16, Value) {
        self.post(&format!("/api/v1/tasks/{id}/cancel"), None).await
    }

    /// Polls the task until `done(status)` or `secs` pass (then panics). While the worker
    /// runs, learns its pid and its callback token from `/proc` (we run as the same user).
    pub async fn wait_until(&self, id: &str, secs: u64, done: impl Fn(&str) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let t = self.task(id).await;
            if let Some(pid) = worker_pid(&t) {
                self.observe_worker(id, pid);
            }
            if done(t["status"].as_str().unwrap_or("")) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "task {id} did not get there within {secs}s: {t:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_terminal(&self, id: &str, secs: u64) -> Value {
        self.wait_until(id, secs, |s| TERMINAL.contains(&s)).await
    }

    /// Records the worker's pid, and the callback token from its environment if readable.
    fn observe_worker(&self, id: &str, pid: i32) {
        {
            let mut pids = self.worker_pids.lock().unwrap();
            if pids.contains(&pid) {
                return;
            }
            pids.push(pid);
        }
        let Some(env) = environ(pid) else { return };
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        if get("AO_TASK_ID").as_deref() == Some(id)
            && let Some(tok) = get("AO_CALLBACK_TOKEN")
        {
            self.secrets
                .lock()
                .unwrap()
                .push((format!("AO_CALLBACK_TOKEN of {id}"), tok));
        }
    }

    /// Callback tokens learnt so far.
    pub fn callback_tokens(&self) -> usize {
        self.secrets
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| n.starts_with("AO_CALLBACK_TOKEN"))
            .count()
    }

    /// The task's events as stored (`/events?follow=false`).
    pub async fn events(&self, id: &str) -> Vec<Sse> {
        let (status, body) = self
            .get_text(&format!("/api/v1/tasks/{id}/events?follow=false"))
            .await;
        assert_eq!(status, 200, "{body}");
        parse_sse(&body)
    }

    pub async fn logs(&self, id: &str) -> String {
        let (status, body) = self.get_text(&format!("/api/v1/tasks/{id}/logs")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn metrics(&self) -> String {
        let (status, body) = self.get_text("/metrics").await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The task's folder of the local runtime.
    pub fn task_dir(&self, id: &str) -> PathBuf {
        self.data_dir.join("workers").join(id)
    }

    /// Fetches everything the API exposes about every task, then checks that no secret value
    /// appears in the server's log, any API response, or any file under the data dir (except
    /// the files of the agent's repository checkout itself, which the agent wrote).
    pub async fn assert_no_secret_leaks(&self) {
        let ids = self.tasks.lock().unwrap().clone();
        for id in &ids {
            self.task(id).await;
            self.events(id).await;
            self.logs(id).await;
        }
        self.get_json("/api/v1/tasks?limit=200").await;
        self.metrics().await;
        // Let the server log whatever those requests made it log.
        tokio::time::sleep(Duration::from_millis(300)).await;

        let secrets = self.secrets.lock().unwrap().clone();
        let mut found = Vec::new();
        let logs = self.log.lock().unwrap().clone();
        let bodies = self.bodies.lock().unwrap().clone();
        let mut files = Vec::new();
        walk(&self.data_dir, &mut files);
        let mut scanned_files = 0;
        for (name, value) in &secrets {
            let v = value.as_bytes();
            for (i, line) in logs.iter().enumerate() {
                if line.contains(value.as_str()) {
                    found.push(format!(
                        "{name} in server log line {i}: {}",
                        excerpt(line, value)
                    ));
                }
            }
            for (i, b) in bodies.iter().enumerate() {
                if b.contains(value.as_str()) {
                    found.push(format!(
                        "{name} in API response #{i}: {}",
                        excerpt(b, value)
                    ));
                }
            }
            for f in &files {
                if self.is_agent_worktree_file(f) {
                    continue;
                }
                scanned_files += 1;
                let Ok(bytes) = std::fs::read(f) else {
                    continue;
                };
                if bytes.windows(v.len()).any(|w| w == v) {
                    found.push(format!("{name} in file {}", f.display()));
                }
            }
        }
        assert!(
            !logs.is_empty() && !bodies.is_empty() && scanned_files > 0,
            "nothing was scanned"
        );
        assert!(
            found.is_empty(),
            "secret values leaked:\n{}",
            found.join("\n")
        );
    }

    /// `workers/<id>/workspace/repo/<file>` outside `.git`: the agent's own checkout.
    fn is_agent_worktree_file(&self, f: &Path) -> bool {
        let Ok(rel) = f.strip_prefix(self.data_dir.join("workers")) else {
            return false;
        };
        let parts: Vec<_> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        parts.len() > 3 && parts[1] == "workspace" && parts[2] == "repo" && parts[3] != ".git"
    }

    /// Kills any worker process group of this server that still runs (cleanup after a
    /// failed test: a stalled worker would otherwise wait forever), and waits (bounded) for
    /// the groups to go before the data dir is removed.
    fn kill_leftover_workers(&self) {
        let workers = self.data_dir.join("workers");
        let marker = workers.as_os_str().as_encoded_bytes();
        let mut pids = self.worker_pids.lock().unwrap().clone();
        for dir in std::fs::read_dir(&workers).into_iter().flatten().flatten() {
            if let Ok(p) = std::fs::read_to_string(dir.path().join("supervisor.pid"))
                && let Ok(p) = p.trim().parse::<i32>()
            {
                pids.push(p);
            }
        }
        // Only supervisors of ours (never a recycled pid); they lead their worker's group.
        let ours = |pid: i32| {
            alive(pid)
                && std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.windows(marker.len()).any(|w| w == marker))
        };
        pids.retain(|p| ours(*p));
        for pid in &pids {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while pids.iter().any(|p| ours(*p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.kill_leftover_workers();
    }
}

fn excerpt(text: &str, value: &str) -> String {
    let at = text.find(value).unwrap_or(0);
    let start = text[..at]
        .char_indices()
        .rev()
        .nth(80)
        .map_or(0, |(i, _)| i);
    let end = (at + value.len() + 40).min(text.len());
    let end = (end..=text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    text[start..end].replace(value, "<SECRET>")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            walk(&e.path(), out);
        } else if ft.is_file() {
            out.push(e.path());
        }
    }
}

/// The worker's pid from `worker.name` (`pid-N`).
pub fn worker_pid(task: &Value) -> Option<i32> {
    task["worker"]["name"]
        .as_str()?
        .strip_prefix("pid-")?
        .parse()
        .ok()
}

/// A process's environment, if readable.
pub fn environ(pid: i32) -> Option<Vec<(String, String)>> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter_map(|kv| {
                let s = String::from_utf8_lossy(kv);
                let (k, v) = s.split_once('=')?;
                Some((k.to_owned(), v.to_owned()))
            })
            .collect(),
    )
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Live (non-zombie) processes, other than this test process, whose command line or
/// environment mentions `needle`; as `pid: cmdline`.
pub fn processes_mentioning(needle: &str) -> Vec<String> {
    let me = std::process::id();
    let n = needle.as_bytes();
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid as u32 == me || !alive(pid) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let has = |b: &[u8]| b.windows(n.len()).any(|w| w == n);
        if has(&cmdline) || has(&env) {
            let cmd = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            out.push(format!(
                "{pid}: {}",
                cmd.chars().take(200).collect::<String>()
            ));
        }
    }
    out
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct Sse {
    pub id: Option<i64>,
    pub event: String,
    pub data: Value,
}

/// Parses a complete `text/event-stream` body (comments and keep-alives are skipped).
pub fn parse_sse(body: &str) -> Vec<Sse> {
    let mut out = Vec::new();
    for block in body.replace("\r\n", "\n").split("\n\n") {
        let (mut id, mut event, mut data) = (None, String::from("message"), Vec::new());
        let mut any = false;
        for line in block.lines() {
            if line.starts_with(':') || line.is_empty() {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            any = true;
            match field {
                "id" => id = value.parse().ok(),
                "event" => event = value.to_owned(),
                "data" => data.push(value.to_owned()),
                _ => {}
            }
        }
        if any {
            let text = data.join("\n");
            let data = serde_json::from_str(&text).unwrap_or(Value::String(text));
            out.push(Sse { id, event, data });
        }
    }
    out
}

/// Tool names of the agent's `tool_use` blocks, in order.
pub fn tool_uses(events: &[Sse]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.event == "assistant")
        .flat_map(|e| {
            e.data["message"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|b| b["type"] == "tool_use")
        .map(|b| b["name"].as_str().unwrap_or("").to_owned())
        .collect()
}

/// The value of a Prometheus sample line `name{labels} value` (exact series), if present.
pub fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}
