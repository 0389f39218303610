//! Bench fixtures: a minimal in-memory task store (the runtime only writes logs), task and
//! runtime builders, the request-counting lifecycle run, the child-process simulator, and
//! /proc readings.

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ao_core::lifecycle::{Reason, TaskStatus};
use ao_core::runtime::{Callback, EventReceiver, Runtime};
use ao_core::scheduler::{Scheduler, SchedulerConfig};
use ao_core::store::*;
use ao_core::task::*;
use ao_kube_sim::{Behaviour, Sim, SimConfig, Step};
use ao_runtime_kube::{KubeConfig, KubeRuntime};
use async_trait::async_trait;

pub const NS: &str = "agents";
pub const CHILD_ENV: &str = "AO_KUBE_BENCH_SIM_CHILD";

/// Keeps logs only; the runtime calls nothing else.
#[derive(Default)]
pub struct LogStore {
    logs: Mutex<HashMap<TaskId, i64>>,
    feed: ChangeFeed,
}

fn unsupported<T>() -> StoreResult<T> {
    Err(StoreError::NotFound)
}

#[async_trait]
impl TaskStore for LogStore {
    async fn create(&self, _: NewTask, _: usize) -> StoreResult<Created> {
        unsupported()
    }
    async fn get(&self, _: TaskId) -> StoreResult<Option<Task>> {
        Ok(None)
    }
    async fn list(&self, _: &ListQuery) -> StoreResult<Page> {
        unsupported()
    }
    async fn history(&self, _: TaskId) -> StoreResult<Vec<TransitionRecord>> {
        Ok(vec![])
    }
    async fn transition(&self, _: TaskId, _: TaskStatus, _: Transition) -> StoreResult<Task> {
        unsupported()
    }
    async fn request_cancel(&self, _: TaskId) -> StoreResult<Task> {
        unsupported()
    }
    async fn queued(&self, _: usize) -> StoreResult<Vec<Task>> {
        Ok(vec![])
    }
    async fn active(&self) -> StoreResult<Vec<Task>> {
        Ok(vec![])
    }
    async fn count_by_status(&self) -> StoreResult<Vec<(TaskStatus, u64)>> {
        Ok(vec![])
    }
    async fn finished_since(
        &self,
        _: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<FinishedTask>> {
        Ok(vec![])
    }
    async fn set_worker_token_hash(&self, _: TaskId, _: &str) -> StoreResult<()> {
        Ok(())
    }
    async fn worker_token_hash(&self, _: TaskId) -> StoreResult<Option<String>> {
        Ok(None)
    }
    async fn set_result(&self, _: TaskId, _: &TaskResult) -> StoreResult<()> {
        Ok(())
    }
    async fn append_logs(&self, id: TaskId, lines: &[String]) -> StoreResult<()> {
        *self.logs.lock().unwrap().entry(id).or_default() += lines.len() as i64;
        Ok(())
    }
    async fn logs(&self, _: TaskId, _: i64, _: usize) -> StoreResult<Vec<LogLine>> {
        Ok(vec![])
    }
    async fn log_count(&self, id: TaskId) -> StoreResult<i64> {
        Ok(self.logs.lock().unwrap().get(&id).copied().unwrap_or(0))
    }
    async fn append_events(&self, _: TaskId, _: &[serde_json::Value]) -> StoreResult<i64> {
        Ok(0)
    }
    async fn append_events_at(
        &self,
        _: TaskId,
        _: i64,
        _: &[serde_json::Value],
    ) -> StoreResult<i64> {
        Ok(0)
    }
    async fn events(&self, _: TaskId, _: i64, _: usize) -> StoreResult<Vec<EventRecord>> {
        Ok(vec![])
    }
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }
    fn subscribe(&self, id: TaskId) -> Subscription {
        self.feed.subscribe(id)
    }
    fn subscribe_list(&self) -> ao_core::store::ListSubscription {
        self.feed.subscribe_list()
    }
}

pub fn runtime(client: kube::Client, cfg: KubeConfig) -> (Arc<KubeRuntime>, EventReceiver) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let rt = Arc::new(KubeRuntime::new(
        client,
        KubeConfig {
            namespace: NS.into(),
            ..cfg
        },
        Arc::new(LogStore::default()),
        tx,
    ));
    (rt, rx)
}

pub fn spec(prompt: &str) -> TaskSpec {
    serde_json::from_value(serde_json::json!({"prompt": prompt, "timeout_seconds": 3600})).unwrap()
}

pub fn task(prompt: &str) -> Task {
    Task {
        id: TaskId::new(),
        status: TaskStatus::Running,
        reason: Reason::WorkerStarted,
        message: None,
        spec: spec(prompt),
        created_at: chrono::Utc::now(),
        started_at: Some(chrono::Utc::now()),
        finished_at: None,
        worker: None,
        exit_code: None,
        cancel_requested: false,
        result: None,
        idempotency_key: None,
        request_hash: String::new(),
    }
}

pub fn callback() -> Callback {
    Callback {
        url: "http://orchestrator:8080".into(),
        token: "bench-token".into(),
    }
}

/// Requests seen by the simulator during whole task lifecycles.
pub struct Counts {
    pub per_task: usize,
    pub shared: usize,
    kinds: HashMap<String, usize>,
}

impl Counts {
    pub fn breakdown(&self, n: usize) -> String {
        let mut v: Vec<_> = self
            .kinds
            .iter()
            .map(|(k, c)| format!("{k} {:.1}", *c as f64 / n as f64))
            .collect();
        v.sort();
        v.join(", ")
    }
}

/// Run `n` tasks of `dur` each through the scheduler (with cleanup) and count requests.
pub async fn requests_per_lifecycle(n: usize, dur: Duration) -> Counts {
    let sim = Sim::new(SimConfig {
        default_behaviour: Behaviour::Script(vec![
            Step::Log("start".into()),
            Step::Sleep(dur),
            Step::Log("end".into()),
            Step::Exit(0),
        ]),
        ..SimConfig::default()
    });
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let store = Arc::new(
        ao_store_sqlite::SqliteStore::open(&dir.path().join("b.db"))
            .await
            .unwrap(),
    );
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let rt = Arc::new(KubeRuntime::new(
        sim.client(NS),
        KubeConfig::default(),
        store.clone(),
        tx,
    ));
    rt.start().await.unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = ao_core::metrics::TaskMetrics::register(&mut registry);
    let cfg = SchedulerConfig {
        max_concurrency: n,
        worker_retention: Duration::ZERO,
        gc_interval: Duration::from_secs(3600),
        idle_tick: Duration::from_millis(20),
        callback_url: Some("http://orchestrator:8080".into()),
        ..SchedulerConfig::default()
    };
    let mut sched = Scheduler::new(
        store.clone(),
        rt.clone() as Arc<dyn Runtime>,
        rx,
        cfg,
        metrics,
    );
    let mut ids = Vec::new();
    for i in 0..n {
        let id = TaskId::new();
        let new = NewTask {
            id,
            spec: spec(&format!("t{i}")),
            idempotency_key: None,
            request_hash: id.to_string(),
            created_at: chrono::Utc::now(),
        };
        store.create(new, 100_000).await.unwrap();
        ids.push(id.to_string());
    }
    loop {
        sched.tick().await.unwrap();
        if sim.pods(NS).is_empty()
            && sim.secrets(NS).is_empty()
            && store.active().await.unwrap().is_empty()
            && store.queued(1).await.unwrap().is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rt.shutdown();
    let mut c = Counts {
        per_task: 0,
        shared: 0,
        kinds: HashMap::new(),
    };
    for r in sim.requests() {
        if ids.iter().any(|id| {
            r.path.contains(id.as_str()) || String::from_utf8_lossy(&r.body).contains(id.as_str())
        }) {
            c.per_task += 1;
            let kind = if r.path.ends_with("/log") {
                "pods/log"
            } else if r.path.contains("/secrets") {
                "secrets"
            } else {
                "pods"
            };
            *c.kinds.entry(format!("{} {kind}", r.method)).or_default() += 1;
        } else {
            c.shared += 1;
        }
    }
    c
}

/// A simulator in a child process, over TCP.
pub struct ChildSim {
    child: std::process::Child,
    addr: std::net::SocketAddr,
    dir: tempfile::TempDir,
}

impl ChildSim {
    pub fn start() -> Self {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .env(CHILD_ENV, "1")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().parse().unwrap();
        ChildSim {
            child,
            addr,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub async fn client(&self) -> kube::Client {
        let path = self.dir.path().join("kubeconfig");
        ao_kube_sim::write_kubeconfig(&path, self.addr, NS).unwrap();
        let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(cfg).unwrap()
    }

    pub fn rss_kib(&self) -> u64 {
        status_kib(&format!("/proc/{}/status", self.child.id()))
    }
}

impl Drop for ChildSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_kib(path: &str) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

pub fn rss_kib() -> u64 {
    status_kib("/proc/self/status")
}

/// utime + stime of this process, in clock ticks.
pub fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: state is field 3; utime and stime are fields 14 and 15.
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// USER_HZ, which is 100 on Linux.
pub fn ticks_per_sec() -> f64 {
    100.0
}
