//! The Kubernetes runtime on a real kube-apiserver (the environment of
//! `scripts/kube-testenv.sh`, started or attached by `ao-kube-testenv`), counted from the API
//! server's audit log in one run:
//!
//! 1. API requests per task lifecycle, from every client, by client and verb, against a
//!    `batch/v1` Job per task run by kube-controller-manager ([`lifecycle`]);
//! 2. launches per second of a burst, as a ratio to the bare pod-create rate of a minimal
//!    client on the same API server (the ceiling), with launches one at a time and windowed
//!    ([`launch`]);
//! 3. the orchestrator's RSS with many running pods (no-op node) and the time to re-adopt
//!    them after a `kill -9` ([`scale`]).
//!
//! The orchestrator is the real `agent-orchestrator serve --runtime kubernetes` binary,
//! authenticated as its ServiceAccount (Role from `deploy/rbac.yaml`), never admin.
//!
//! Sizes: full (`cargo bench -p agent-orchestrator --bench kube_api`): 20 lifecycles of
//! each kind, bursts of 150, 10,000 pods. Quick (`-- --quick`, or run without `--bench` as
//! `cargo test -p agent-orchestrator --bench kube_api`): 3, 30, 1,000 — a smoke run for CI.
//! `KUBE_BENCH_ONLY=lifecycle,launch,scale` picks sections. The bench measures and prints; it
//! asserts only correctness (every task ends right, nothing launched twice, every request
//! is in the audit log), never a timing.

#[path = "kube_api/audit.rs"]
mod audit;
#[path = "kube_api/cluster.rs"]
mod cluster;
#[path = "kube_api/launch.rs"]
mod launch;
#[path = "kube_api/lifecycle.rs"]
mod lifecycle;
#[path = "kube_api/orch.rs"]
mod orch;
#[path = "kube_api/scale.rs"]
mod scale;

use std::time::Instant;

use lifecycle::Lifecycle;

struct Sizes {
    quick: bool,
    lifecycles: usize,
    burst: usize,
    /// Rounds of the launch measurement (the shared machine is noisy: medians are reported).
    rounds: usize,
    pods: usize,
}

impl Sizes {
    fn from_args() -> Sizes {
        let args: Vec<String> = std::env::args().collect();
        let quick = args.iter().any(|a| a == "--quick") || !args.iter().any(|a| a == "--bench");
        if quick {
            Sizes {
                quick,
                lifecycles: 3,
                burst: 30,
                rounds: 1,
                pods: 1_000,
            }
        } else {
            Sizes {
                quick,
                lifecycles: 20,
                burst: 150,
                rounds: 3,
                pods: 10_000,
            }
        }
    }
}

fn wanted(section: &str) -> bool {
    match std::env::var("KUBE_BENCH_ONLY") {
        Ok(v) if !v.trim().is_empty() => v.split(',').any(|s| s.trim() == section),
        _ => true,
    }
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sizes = Sizes::from_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    println!(
        "kube_api bench ({} mode) against {}",
        if sizes.quick { "quick" } else { "full" },
        ao_kube_testenv::env().server
    );
    rt.block_on(async {
        if wanted("lifecycle") {
            report_lifecycles(sizes.lifecycles).await;
        }
        if wanted("launch") {
            report_launches(sizes.burst, sizes.rounds).await;
        }
        if wanted("scale") {
            report_scale(sizes.pods).await;
        }
    });
    println!(
        "\nkube_api bench done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

async fn report_lifecycles(n: usize) {
    println!("\n== 1. API requests per task lifecycle ({n} tasks each, audit log) ==");
    let ours = lifecycle::ours(n).await;
    let jobs = lifecycle::jobs(n).await;
    for (name, l) in [
        (
            "orchestrator (pod + token Secret, exit-0 script worker)",
            &ours,
        ),
        ("batch/v1 Job per task (ttlSecondsAfterFinished: 0)", &jobs),
    ] {
        let (rest, node) = l.per_task();
        println!(
            "\n  {name}: {rest:.2} requests/task from the clients and controllers, {node:.2} from the node"
        );
        print!("{}", l.tally.render(l.tasks));
    }
    check_lifecycle(&ours, "orchestrator");
    check_lifecycle(&jobs, "Job");
}

/// Correctness only: every measured lifecycle caused requests, and the node ran every pod.
fn check_lifecycle(l: &Lifecycle, what: &str) {
    let (rest, node) = l.per_task();
    assert!(
        rest >= 1.0 && node >= 1.0,
        "{what}: the audit log shows no lifecycle:\n{}",
        l.tally.render(l.tasks)
    );
}

async fn report_launches(n: usize, rounds: usize) {
    println!(
        "\n== 2. Launches per second, burst of {n} (pod creates in the audit log), {rounds} round(s) =="
    );
    let image = launch::noop_image();
    let window = ao_core::scheduler::DEFAULT_LAUNCH_CONCURRENCY;
    let mut ratios: Vec<(String, Vec<f64>)> = Vec::new();
    for round in 1..=rounds {
        println!("  round {round}:");
        let mut runs = vec![launch::bare(n, &image, "first").await];
        for w in [1, window] {
            runs.push(launch::orchestrator(n, &image, w).await);
            runs.push(launch::backlog(n, &image, w).await);
        }
        runs.push(launch::bare(n, &image, "last").await);
        let ceiling = (runs[0].per_sec + runs[runs.len() - 1].per_sec) / 2.0;
        for b in &runs {
            print_burst(b, ceiling);
        }
        println!("    (ratio against the mean of the round's two bare runs, {ceiling:.1}/s)");
        for b in &runs[1..runs.len() - 1] {
            match ratios.iter_mut().find(|(w, _)| *w == b.what) {
                Some((_, r)) => r.push(b.per_sec / ceiling),
                None => ratios.push((b.what.clone(), vec![b.per_sec / ceiling])),
            }
        }
    }
    println!("  median ratio to the ceiling over the rounds:");
    for (what, mut r) in ratios {
        r.sort_by(f64::total_cmp);
        println!("    {what:<52} {:.2}", r[r.len() / 2]);
    }
}

fn print_burst(b: &launch::Burst, ceiling: f64) {
    let wall = b
        .wall
        .map(|w| format!(", all running after {:.2} s", w.as_secs_f64()))
        .unwrap_or_default();
    let submit = b
        .submit
        .map(|s| format!(" (submitting took {:.2} s)", s.as_secs_f64()))
        .unwrap_or_default();
    println!(
        "    {:<52} {:>5} creates {:>8.1}/s  ratio {:.2}{wall}{submit}",
        b.what,
        b.creates,
        b.per_sec,
        b.per_sec / ceiling
    );
}

async fn report_scale(n: usize) {
    println!("\n== 3. {n} running pods (no-op node): memory and re-adoption after kill -9 ==");
    let image = launch::noop_image();
    let s = scale::run(n, &image).await;
    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "  RSS idle (no task)            {:>8.1} MiB",
        mib(s.rss_idle_kib)
    );
    println!(
        "  RSS with {:>6} running       {:>8.1} MiB",
        s.pods,
        mib(s.rss_running_kib)
    );
    println!(
        "  RSS after re-adopting them    {:>8.1} MiB",
        mib(s.rss_adopted_kib)
    );
    println!(
        "  submit → all running          {:>8.2} s",
        s.launch_all.as_secs_f64()
    );
    println!(
        "  restart → listening           {:>8.2} s",
        s.to_listening.as_secs_f64()
    );
    println!(
        "  restart → all {} adopted   {:>8.2} s",
        s.pods,
        s.to_adopted.as_secs_f64()
    );
}
