//! Replicas of the real server binary on one PostgreSQL database, with the Kubernetes runtime
//! against the simulator: start, stop (SIGTERM or SIGKILL), find the leader, read their logs.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ao_kube_sim::{Behaviour, Sim, SimConfig};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_agent-orchestrator");
pub const NAMESPACE: &str = "agents";

/// One `serve` process and what it logged (JSON lines).
pub struct Replica {
    child: std::process::Child,
    pub base: String,
    pub logs: Arc<Mutex<Vec<Value>>>,
}

impl Replica {
    /// Log lines whose message contains `text`, with their timestamps.
    pub fn logged(&self, text: &str) -> Vec<DateTime<Utc>> {
        self.logs
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v["message"].as_str().is_some_and(|m| m.contains(text)))
            .filter_map(|v| v["timestamp"].as_str()?.parse().ok())
            .collect()
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(mut self) -> DateTime<Utc> {
        let at = Utc::now();
        let _ = self.child.kill();
        let _ = self.child.wait();
        at
    }

    /// SIGTERM and wait for the exit.
    pub fn terminate(mut self) {
        let pid = nix::unistd::Pid::from_raw(self.pid());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "a replica stopped by SIGTERM exits cleanly: {status}"
        );
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The replicas' shared world.
pub struct Cluster {
    pub sim: Sim,
    pub dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    pub url: String,
    pub lease_seconds: u64,
    pub max_concurrency: u32,
    started: usize,
    pub client: reqwest::Client,
}

impl Cluster {
    /// A simulator whose pods run `behaviour` unless told otherwise, and `url`'s database.
    pub async fn new(url: &str, behaviour: Behaviour) -> Cluster {
        let sim = Sim::new(SimConfig {
            default_behaviour: behaviour,
            ..SimConfig::default()
        });
        // The worker Secret every pod references (its values never matter here).
        sim.put_secret(
            NAMESPACE,
            "claude-worker-secrets",
            &[
                ("ANTHROPIC_API_KEY", "sk-test"),
                ("GITHUB_TOKEN", "ghp-test"),
            ],
        );
        let addr = sim.serve_tcp().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        ao_kube_sim::write_kubeconfig(&kubeconfig, addr, NAMESPACE).unwrap();
        Cluster {
            sim,
            dir,
            kubeconfig,
            url: url.to_string(),
            lease_seconds: 3,
            max_concurrency: 8,
            started: 0,
            client: {
                // reqwest needs a TLS provider installed, even for plain HTTP.
                let _ = rustls::crypto::ring::default_provider().install_default();
                reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap()
            },
        }
    }

    /// Start a replica on `database_url` (the cluster's unless given: a test may route one
    /// replica through a proxy).
    pub fn start_on(&mut self, database_url: &str) -> Replica {
        self.started += 1;
        let data = self.dir.path().join(format!("r{}", self.started));
        let mut child = std::process::Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(["--runtime", "kubernetes", "--require-result", "false"])
            .args(["--callback-url", "http://127.0.0.1:9", "--stop-grace", "1"])
            .arg("--max-concurrency")
            .arg(self.max_concurrency.to_string())
            .arg("--leader-lease-seconds")
            .arg(self.lease_seconds.to_string())
            .arg("--data-dir")
            .arg(&data)
            .env("AO_DATABASE_URL", database_url)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("AO_KUBECONFIG", "")
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("replica exited before listening")
                .unwrap();
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            let listening = v["message"] == "listening";
            let addr = v["addr"].as_str().map(str::to_string);
            logs.lock().unwrap().push(v);
            if listening {
                break addr.unwrap();
            }
        };
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line).unwrap_or(json!({ "raw": line }));
                sink.lock().unwrap().push(v);
            }
        });
        Replica {
            child,
            base: format!("http://{addr}"),
            logs,
        }
    }

    pub fn start(&mut self) -> Replica {
        let url = self.url.clone();
        self.start_on(&url)
    }

    /// The replica's `/readyz` body (JSON with replicas).
    pub async fn readyz(&self, r: &Replica) -> Option<Value> {
        let resp = self
            .client
            .get(format!("{}/readyz", r.base))
            .send()
            .await
            .ok()?;
        resp.json().await.ok()
    }

    pub async fn leads(&self, r: &Replica) -> bool {
        self.readyz(r)
            .await
            .is_some_and(|v| v["scheduler"]["leads"] == true)
    }

    /// Wait (bounded) until exactly one of `rs` leads; its index.
    pub async fn leader(&self, rs: &[&Replica]) -> usize {
        for _ in 0..400 {
            let mut leading = Vec::new();
            for (i, r) in rs.iter().enumerate() {
                if self.leads(r).await {
                    leading.push(i);
                }
            }
            match leading[..] {
                [one] => return one,
                [] => {}
                _ => panic!("several replicas lead at once: {leading:?}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no replica came to lead");
    }

    /// Submit a task through `r`; its id.
    pub async fn submit(&self, r: &Replica, prompt: &str) -> String {
        let resp = self
            .client
            .post(format!("{}/api/v1/tasks", r.base))
            .json(&json!({ "prompt": prompt }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
        resp.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn task(&self, r: &Replica, id: &str) -> Value {
        let resp = self
            .client
            .get(format!("{}/api/v1/tasks/{id}", r.base))
            .send();
        resp.await.unwrap().json().await.unwrap()
    }

    /// Wait (bounded) until every task in `ids` is terminal, reading through `r`; the tasks.
    pub async fn wait_all(&self, r: &Replica, ids: &[String], limit: Duration) -> Vec<Value> {
        let end = tokio::time::Instant::now() + limit;
        let mut done: BTreeMap<String, Value> = BTreeMap::new();
        while done.len() < ids.len() {
            let left: Vec<&String> = ids.iter().filter(|id| !done.contains_key(*id)).collect();
            for id in left {
                let t = self.task(r, id).await;
                if t["status"]
                    .as_str()
                    .is_some_and(|s| crate::TERMINAL.contains(&s))
                {
                    done.insert(id.clone(), t);
                }
            }
            if done.len() < ids.len() && tokio::time::Instant::now() > end {
                let left: Vec<_> = ids.iter().filter(|id| !done.contains_key(*id)).collect();
                let first = self.task(r, left[0]).await;
                panic!("{} tasks never finished, e.g. {first:#}", left.len());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        ids.iter().map(|id| done.remove(id).unwrap()).collect()
    }

    /// Every task `r` lists (following the cursor), optionally of one status.
    pub async fn list_all(&self, r: &Replica, status: Option<&str>) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = vec![("limit", "200".to_string())];
            q.extend(status.map(|s| ("status", s.to_string())));
            q.extend(cursor.take().map(|c| ("cursor", c)));
            let resp = self
                .client
                .get(format!("{}/api/v1/tasks", r.base))
                .query(&q)
                .send();
            let page: Value = resp.await.unwrap().json().await.unwrap();
            out.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    }

    /// Pods created more than once, by name.
    pub fn duplicate_pods(&self) -> Vec<(String, u32)> {
        self.sim
            .pods_created(NAMESPACE)
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .collect()
    }
}

/// The pod name of a task.
pub fn pod_of(id: &str) -> String {
    format!("claude-worker-{id}")
}
