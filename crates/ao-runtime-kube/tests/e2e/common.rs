//! Shared fixtures: a simulator, a store, a runtime and a scheduler wired like the binary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ao_core::runtime::Runtime;
use ao_core::scheduler::{Scheduler, SchedulerConfig};
use ao_core::store::TaskStore;
use ao_core::task::{NewTask, Task, TaskId, TaskSpec};
use ao_kube_sim::{Behaviour, Sim, SimConfig};
use ao_runtime_kube::{KubeConfig, KubeRuntime, RetryPolicy};
use ao_store_sqlite::SqliteStore;

pub const NS: &str = "agents";
pub const API_KEY: &str = "sk-ant-DISTINCTIVE-api-key-0xC0FFEE";
pub const GH_TOKEN: &str = "ghp_DISTINCTIVE_github_token_0xBEEF";

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TEST_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub fn kube_config() -> KubeConfig {
    KubeConfig {
        image: "example.test/agent-orchestrator:test".into(),
        image_pull_limit: Duration::from_millis(300),
        unschedulable_limit: Duration::from_millis(300),
        retry: RetryPolicy {
            attempts: 3,
            first_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            ..RetryPolicy::default()
        },
        cache_ready_timeout: Duration::from_secs(5),
        log_drain_timeout: Duration::from_secs(5),
        ..KubeConfig::default()
    }
}

pub fn sched_config() -> SchedulerConfig {
    SchedulerConfig {
        max_concurrency: 16,
        stop_grace: Duration::from_secs(2),
        stop_timeout: Duration::from_secs(10),
        idle_tick: Duration::from_millis(20),
        callback_url: Some("http://orchestrator.agents.svc:8080".into()),
        ..SchedulerConfig::default()
    }
}

pub struct Env {
    pub sim: Sim,
    pub store: Arc<SqliteStore>,
    pub runtime: Arc<KubeRuntime>,
    pub sched: Scheduler,
    pub _dir: tempfile::TempDir,
}

pub fn sim(cfg: SimConfig) -> Sim {
    let sim = Sim::new(cfg);
    sim.put_secret(
        NS,
        "claude-worker-secrets",
        &[("ANTHROPIC_API_KEY", API_KEY), ("GITHUB_TOKEN", GH_TOKEN)],
    );
    sim
}

/// A runtime + scheduler over `store` and `sim` (also used to "restart" the orchestrator).
pub async fn orchestrator(
    sim: &Sim,
    store: Arc<SqliteStore>,
    cfg: SchedulerConfig,
) -> (Arc<KubeRuntime>, Scheduler) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let rt = Arc::new(KubeRuntime::new(
        sim.client(NS),
        kube_config(),
        store.clone(),
        tx,
    ));
    rt.start().await.unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = ao_core::metrics::TaskMetrics::register(&mut registry);
    let sched = Scheduler::new(store, rt.clone() as Arc<dyn Runtime>, rx, cfg, metrics);
    (rt, sched)
}

pub async fn env_with(cfg: SimConfig, sc: SchedulerConfig) -> Env {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("ao.db")).await.unwrap());
    let sim = sim(cfg);
    let (runtime, sched) = orchestrator(&sim, store.clone(), sc).await;
    Env {
        sim,
        store,
        runtime,
        sched,
        _dir: dir,
    }
}

pub async fn env() -> Env {
    env_with(SimConfig::default(), sched_config()).await
}

pub fn spec(prompt: &str) -> TaskSpec {
    serde_json::from_value(serde_json::json!({
        "prompt": prompt,
        "timeout_seconds": 600,
        "model": "claude-sonnet-4-5",
        "repository": {"url": "https://github.com/example/repo"},
        "labels": {"team": "infra"},
        "env": {"FOO": "bar"}
    }))
    .unwrap()
}

pub async fn submit(store: &SqliteStore, spec: TaskSpec) -> TaskId {
    let id = TaskId::new();
    let new = NewTask {
        id,
        spec,
        idempotency_key: None,
        request_hash: id.to_string(),
        created_at: chrono::Utc::now(),
    };
    store.create(new, 100_000).await.unwrap();
    id
}

pub fn pod_name(id: TaskId) -> String {
    format!("claude-worker-{id}")
}

/// Tick the scheduler until the task is terminal.
pub async fn run_to_end(
    sched: &mut Scheduler,
    store: &SqliteStore,
    id: TaskId,
    limit: Duration,
) -> Task {
    let start = Instant::now();
    loop {
        sched.tick().await.unwrap();
        let t = store.get(id).await.unwrap().unwrap();
        if t.status.is_terminal() {
            return t;
        }
        assert!(
            start.elapsed() < limit,
            "task {id} still {} after {limit:?}",
            t.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Tick until `cond` holds.
pub async fn tick_until(sched: &mut Scheduler, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        sched.tick().await.unwrap();
        assert!(
            start.elapsed() < limit,
            "condition not reached within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn log_lines(store: &SqliteStore, id: TaskId) -> Vec<String> {
    store
        .logs(id, 0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect()
}

pub fn script(lines: &[&str], sleep_ms: u64, code: i32) -> Behaviour {
    use ao_kube_sim::Step;
    let mut s: Vec<Step> = lines.iter().map(|l| Step::Log(l.to_string())).collect();
    s.push(Step::Sleep(Duration::from_millis(sleep_ms)));
    s.push(Step::Exit(code));
    Behaviour::Script(s)
}

/// Wait (no sleeps) until `cond` holds in the simulator, re-checked on every request and pod
/// change; fail after `limit`.
pub async fn sim_until(sim: &Sim, limit: Duration, cond: impl FnMut(&Sim) -> bool) {
    tokio::time::timeout(limit, sim.until(cond))
        .await
        .unwrap_or_else(|_| panic!("simulator condition not reached within {limit:?}"));
}

/// The pod's phase in the simulator, if the pod exists.
pub fn phase(sim: &Sim, name: &str) -> Option<String> {
    sim.pod(NS, name)?.status?.phase
}

/// Tick until the task has at least `n` stored log lines.
pub async fn tick_until_logged(sched: &mut Scheduler, store: &SqliteStore, id: TaskId, n: usize) {
    let start = Instant::now();
    loop {
        sched.tick().await.unwrap();
        if log_lines(store, id).await.len() >= n {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "task {id} did not log {n} lines"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
