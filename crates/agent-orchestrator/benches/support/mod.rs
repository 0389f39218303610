//! What the black-box benches of `agent-orchestrator serve` share: the release binary run as
//! a subprocess on 127.0.0.1:0 with a fresh data directory (killed, with its leftover
//! workers, on drop, even on panic), an HTTP client, the fsync reference probe, percentile
//! summaries and Prometheus samples read from `/metrics`.

#![allow(dead_code, reason = "each bench uses part of it")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_agent-orchestrator");

/// The server under test.
pub struct Server {
    child: Child,
    pub base: String,
    data: PathBuf,
    // Dropped after `drop` has stopped the processes that use it.
    _dir: tempfile::TempDir,
}

impl Server {
    /// Start `agent-orchestrator serve` with `worker` (program and arguments) as the worker.
    pub fn start(worker: &[&str], max_concurrency: u32) -> Server {
        Server::start_with(worker, max_concurrency, &[])
    }

    /// [`Server::start`] with more `serve` arguments (e.g. `--database-url`).
    pub fn start_with(worker: &[&str], max_concurrency: u32, extra: &[String]) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("ao-bench-")
            .tempdir()
            .expect("temp dir");
        let data = dir.path().join("data");
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--worker-command")
            .arg(worker[0])
            .args(worker[1..].iter().map(|a| format!("--worker-arg={a}")))
            .args([
                "--max-concurrency",
                &max_concurrency.to_string(),
                "--max-queued",
                "1000000",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // Only the flags above configure the server.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("AO_") {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd.spawn().expect("spawning the server");
        let stderr = child.stderr.take().expect("piped stderr");
        let mut server = Server {
            child,
            base: String::new(),
            data,
            _dir: dir,
        };

        let (tx, rx) = mpsc::channel::<Result<String, String>>();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            let mut early: Vec<String> = Vec::new();
            // Keep draining until the server closes stderr, so it never blocks on the pipe.
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let Some(t) = &tx else { continue };
                let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                if v["message"] == "listening" {
                    let _ = t.send(Ok(v["addr"].as_str().unwrap_or_default().to_string()));
                    tx = None;
                } else if early.len() < 50 {
                    early.push(line);
                }
            }
            if let Some(t) = tx {
                let _ = t.send(Err(early.join("\n")));
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(addr)) => server.base = format!("http://{addr}"),
            Ok(Err(log)) => panic!("the server exited before listening:\n{log}"),
            Err(e) => panic!("the server did not report its address within 60 s: {e}"),
        }
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM first (graceful), SIGKILL after 5 s.
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let mut gone = false;
        for _ in 0..100 {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => {
                    gone = true;
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        if !gone {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        kill_leftover_workers(&self.data.join("workers"));
    }
}

/// Workers outlive the server by design (the next start adopts them). Kill the process group
/// of every supervisor still running for a task folder under `workers`, checking its command
/// line so that a recycled pid is never hit.
fn kill_leftover_workers(workers: &Path) {
    let Ok(entries) = std::fs::read_dir(workers) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(dir) = std::fs::canonicalize(e.path()) else {
            continue;
        };
        let Ok(pid) = std::fs::read_to_string(dir.join("supervisor.pid")) else {
            continue;
        };
        let Ok(pid) = pid.trim().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let dir_arg = dir.as_os_str().as_encoded_bytes();
        if pid > 1 && cmdline.split(|b| *b == 0).any(|a| a == dir_arg) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Reference for the store's durability cost: append 256 bytes and `fdatasync`, `n` times, on
/// the file system that holds the data directories (the store commits in WAL mode with
/// `synchronous=FULL`, one fsync per committed transaction).
pub fn fsync_probe(n: usize) -> Summary {
    use std::io::Write;
    let dir = tempfile::Builder::new()
        .prefix("ao-bench-fsync-")
        .tempdir()
        .expect("temp dir");
    let mut f = std::fs::File::create(dir.path().join("probe")).expect("probe file");
    let xs: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f.write_all(&[7u8; 256]).expect("write");
            f.sync_data().expect("fdatasync");
            ms(t.elapsed())
        })
        .collect();
    summarize(&xs)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

#[derive(Clone, Copy)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// Nearest-rank percentiles of `xs` (any unit).
pub fn summarize(xs: &[f64]) -> Summary {
    assert!(!xs.is_empty(), "no samples");
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    Summary {
        n: v.len(),
        mean: v.iter().sum::<f64>() / v.len() as f64,
        p50: rank(0.50),
        p99: rank(0.99),
        max: v[v.len() - 1],
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn ms_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e3
}

/// Sum of the samples of a metric family in the Prometheus text output.
pub async fn metric(c: &reqwest::Client, s: &Server, name: &str) -> f64 {
    let text = c
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ', '_']))
        .filter(|l| !l[name.len()..].starts_with("_created"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
