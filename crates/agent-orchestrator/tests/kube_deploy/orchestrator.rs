//! The real `agent-orchestrator serve --runtime kubernetes` binary as a child process, with a
//! kubeconfig of its ServiceAccount, its log kept for the report, and a small client of its
//! task API.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::*;

/// How the orchestrator runs (the same for each start of one scenario).
pub struct Setup {
    pub kubeconfig: PathBuf,
    pub namespace: String,
    pub image: String,
    pub data: PathBuf,
    /// Fixed across restarts: pods call back here.
    pub port: u16,
}

impl Setup {
    /// The binary's `sub` command (`serve`, `doctor`) with the scenario's options, as the
    /// orchestrator's ServiceAccount.
    fn command(&self, sub: &str) -> Command {
        let listen = format!("127.0.0.1:{}", self.port);
        let mut c = Command::new(BIN);
        c.args([sub, "--log-format", "json", "--runtime", "kubernetes"])
            .args([
                "--listen",
                &listen,
                "--callback-url",
                &format!("http://{listen}"),
            ])
            .args([
                "--k8s-namespace",
                &self.namespace,
                "--worker-image",
                &self.image,
            ])
            .args([
                "--k8s-worker-command",
                "worker",
                "--require-result",
                "false",
            ])
            .args(["--stop-grace", "1", "--k8s-pod-ttl-seconds", "0"])
            .arg("--data-dir")
            .arg(&self.data)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("AO_KUBECONFIG", "")
            .env_remove("KUBERNETES_SERVICE_HOST");
        c
    }

    /// `agent-orchestrator doctor` with the same options: its exit code and checklist.
    pub fn doctor(&self) -> (Option<i32>, String) {
        let out = self.command("doctor").output().expect("run doctor");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    }
}

pub struct Orchestrator {
    child: Child,
    pub base: String,
    pub log: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
}

pub const TERMINAL: &[&str] = &["succeeded", "failed", "cancelled", "timed_out"];

impl Orchestrator {
    pub fn start(s: &Setup) -> Orchestrator {
        let listen = format!("127.0.0.1:{}", s.port);
        let mut child = s
            .command("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start agent-orchestrator serve");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                if v["message"] == "listening" {
                    let _ = tx.send(());
                }
                keep.lock().unwrap().push(line);
            }
        });
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = child.kill();
            panic!(
                "the orchestrator did not listen:\n{}",
                log.lock().unwrap().join("\n")
            );
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        Orchestrator {
            child,
            base: format!("http://{listen}"),
            log,
            http: reqwest::Client::new(),
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub async fn submit(&self, env: Value) -> String {
        let r = self
            .http
            .post(format!("{}/api/v1/tasks", self.base))
            .json(&json!({"prompt": "deploy scenario", "env": env}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn task(&self, id: &str) -> Value {
        let r = self
            .http
            .get(format!("{}/api/v1/tasks/{id}", self.base))
            .send()
            .await;
        match r {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    pub async fn logs(&self, id: &str) -> String {
        let url = format!("{}/api/v1/tasks/{id}/logs", self.base);
        self.http
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn cancel(&self, id: &str) -> u16 {
        let url = format!("{}/api/v1/tasks/{id}/cancel", self.base);
        self.http.post(url).send().await.unwrap().status().as_u16()
    }

    /// The task once its status is one of `want`, or `None` after `limit` (a scenario with a
    /// verb missing may never get there: that is an observation, not a test failure here).
    pub async fn wait_status(&self, id: &str, want: &[&str], limit: Duration) -> Option<Value> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let t = self.task(id).await;
            if t["status"].as_str().is_some_and(|s| want.contains(&s)) {
                return Some(t);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Orchestrator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The worker the pods run: prints its task, sleeps `$SLEEP` seconds, exits `$EXIT`.
pub fn worker_script(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("worker");
    std::fs::write(
        &p,
        "#!/bin/sh\nPATH=\"$PATH:/usr/bin:/bin\"\necho \"pod task $AO_TASK_ID\"\n\
         [ -n \"$SLEEP\" ] && sleep \"$SLEEP\"\necho done\nexit \"${EXIT:-0}\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}
