//! Benchmark of the Kubernetes runtime against the API simulator (plain timing, no harness):
//!
//! (a) API requests per task lifecycle (from the simulator's records), against the original
//!     design's per-pod polling every 2 s;
//! (b) tasks launched per second with 5 ms of API latency, one at a time (as the scheduler
//!     launches) and 64 at a time;
//! (c) orchestrator RSS and CPU while following N running pods — the simulator runs in a child
//!     process (the bench re-executes itself), so the figures are the orchestrator's alone;
//! (d) time to re-adopt those N pods with a fresh runtime (an orchestrator restart).
//!
//! Sizes come from the environment: `BENCH_A_TASKS` (20), `BENCH_A_SECONDS` ("0.1,2"),
//! `BENCH_B_TASKS` (300), `BENCH_C_PODS` (10000), `BENCH_IDLE_SECONDS` (5).
//! Run: `cargo bench -p ao-runtime-kube --bench kube_runtime`.

mod support;

use std::time::{Duration, Instant};

use ao_core::runtime::{Adoption, LaunchSpec, Runtime};
use ao_kube_sim::{Behaviour, Sim, SimConfig, Step};
use ao_runtime_kube::KubeConfig;
use futures::StreamExt;
use support::*;

fn env_num<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return serve_child();
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut rows: Vec<(String, String)> = Vec::new();
        bench_a(&mut rows).await;
        bench_b(&mut rows).await;
        bench_cd(&mut rows).await;
        println!("\n{:<72} value", "measure");
        println!("{}", "-".repeat(100));
        for (k, v) in rows {
            println!("{k:<72} {v}");
        }
    });
}

/// (a) Requests per task, for tasks of different durations, through the real scheduler.
async fn bench_a(rows: &mut Vec<(String, String)>) {
    let n: usize = env_num("BENCH_A_TASKS", 20);
    let durations: Vec<f64> = std::env::var("BENCH_A_SECONDS")
        .unwrap_or_else(|_| "0.1,2".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    for secs in durations {
        let counts = requests_per_lifecycle(n, Duration::from_secs_f64(secs)).await;
        let per_task = counts.per_task as f64 / n as f64;
        let shared = counts.shared as f64 / n as f64;
        rows.push((
            format!("(a) API requests per task, {n} tasks of {secs} s (task-specific)"),
            format!("{per_task:.2}"),
        ));
        rows.push((
            format!("(a)   breakdown per task: {}", counts.breakdown(n)),
            String::new(),
        ));
        rows.push((
            format!(
                "(a)   shared list/watch requests, amortised per task ({} in total)",
                counts.shared
            ),
            format!("{shared:.2}"),
        ));
        let polling = 600.0 / 2.0 + 2.0;
        rows.push((
            "(a)   original design, 10-minute task, 2 s polling (GETs + create + delete)".into(),
            format!(
                "{polling:.0}  (ratio {:.0}x)",
                polling / (per_task + shared)
            ),
        ));
    }
}

/// (b) Launch throughput with 5 ms API latency.
async fn bench_b(rows: &mut Vec<(String, String)>) {
    let n: usize = env_num("BENCH_B_TASKS", 300);
    for (label, concurrency) in [
        ("one at a time (as the scheduler launches)", 1usize),
        ("64 concurrent", 64),
    ] {
        let sim = Sim::new(SimConfig {
            default_behaviour: Behaviour::forever(),
            ..SimConfig::default()
        });
        sim.faults().latency = Duration::from_millis(5);
        let (runtime, _rx) = runtime(sim.client(NS), KubeConfig::default());
        let tasks: Vec<_> = (0..n).map(|i| task(&format!("launch {i}"))).collect();
        let start = Instant::now();
        futures::stream::iter(tasks)
            .map(|t| {
                let rt = runtime.clone();
                async move {
                    rt.launch(LaunchSpec {
                        task: t,
                        callback: Some(callback()),
                    })
                    .await
                    .unwrap()
                }
            })
            .buffer_unordered(concurrency)
            .collect::<Vec<_>>()
            .await;
        let secs = start.elapsed().as_secs_f64();
        rows.push((
            format!("(b) launches per second, 5 ms API latency, {label} ({n} tasks)"),
            format!("{:.1}", n as f64 / secs),
        ));
        runtime.shutdown();
    }
}

/// (c) Resources while following N running pods, and (d) re-adoption time.
async fn bench_cd(rows: &mut Vec<(String, String)>) {
    let n: usize = env_num("BENCH_C_PODS", 10_000);
    let idle: u64 = env_num("BENCH_IDLE_SECONDS", 5);
    let child = ChildSim::start();
    let base_rss = rss_kib();
    let (runtime, _rx) = runtime(child.client().await, KubeConfig::default());
    runtime.start().await.unwrap();
    let tasks: Vec<_> = (0..n).map(|i| task(&format!("pod {i}"))).collect();
    let start = Instant::now();
    futures::stream::iter(tasks.clone())
        .map(|t| {
            let rt = runtime.clone();
            async move {
                rt.launch(LaunchSpec {
                    task: t,
                    callback: Some(callback()),
                })
                .await
                .unwrap()
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let launched = start.elapsed();
    wait_for(|| runtime.cached_pods() >= n, Duration::from_secs(600)).await;
    // Let every pod start and every log follower attach.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu0 = cpu_ticks();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(idle)).await;
    let cpu = (cpu_ticks() - cpu0) as f64 / ticks_per_sec() / t0.elapsed().as_secs_f64() * 100.0;
    let rss = rss_kib();
    rows.push((
        format!("(c) {n} pods launched (64 concurrent, TCP, no added latency) in"),
        format!("{:.1} s", launched.as_secs_f64()),
    ));
    rows.push((
        format!(
            "(c) orchestrator RSS following {n} running pods (baseline {} MiB)",
            base_rss / 1024
        ),
        format!("{} MiB", rss / 1024),
    ));
    rows.push((
        "(c)   per followed pod (watch cache + pod follower + log stream)".to_string(),
        format!("{:.1} KiB", (rss - base_rss) as f64 / n as f64),
    ));
    rows.push((
        format!("(c) orchestrator CPU while following {n} idle pods ({idle} s window)"),
        format!("{cpu:.1} % of one core"),
    ));
    rows.push((
        "(c) simulator (child process) RSS".to_string(),
        format!("{} MiB", child.rss_kib() / 1024),
    ));
    rows.push((
        "(c) pods followed / in the watch cache".to_string(),
        format!("{} / {}", runtime.followed(), runtime.cached_pods()),
    ));

    // (d) Restart: a fresh runtime adopts every pod, as the scheduler's recovery does.
    runtime.shutdown();
    drop(runtime);
    let (fresh, _rx2) = support::runtime(child.client().await, KubeConfig::default());
    let start = Instant::now();
    let mut alive = 0;
    for t in &tasks {
        if let Adoption::Alive(_) = fresh.adopt(t).await.unwrap() {
            alive += 1;
        }
    }
    let adopt = start.elapsed();
    rows.push((
        format!("(d) re-adopt {n} running pods after a restart (one list + cache lookups)"),
        format!("{:.2} s ({alive} alive)", adopt.as_secs_f64()),
    ));
    rows.push((
        "(d)   per pod".to_string(),
        format!("{:.1} µs", adopt.as_secs_f64() * 1e6 / n as f64),
    ));
    fresh.shutdown();
}

async fn wait_for(mut cond: impl FnMut() -> bool, limit: Duration) {
    let start = Instant::now();
    while !cond() && start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Child process: serve a simulator whose pods run forever after one log line.
fn serve_child() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sim = Sim::new(SimConfig {
            default_behaviour: Behaviour::Script(vec![Step::Log("working".into()), Step::Hang]),
            history_limit: 100_000,
            ..SimConfig::default()
        });
        let addr = sim.serve_tcp().await.unwrap();
        println!("{addr}");
        // Exit when the parent closes stdin.
        tokio::task::spawn_blocking(|| {
            let mut s = String::new();
            let _ = std::io::stdin().read_line(&mut s);
        })
        .await
        .unwrap();
    });
}
