//! Admission under load, black box: the release `agent-orchestrator serve` as a subprocess on
//! loopback (see `support`), measured by closed-loop clients (each sends its next request when
//! the last one is answered). Plain timing, no harness.
//!
//! 1. Admission: `POST /api/v1/tasks` with `BENCH_CLIENTS` (64) concurrent clients, as
//!    requests/s and p50/p99 latency, against `GET /healthz` with the same clients on the same
//!    server in the same run (the ratio is what compares across machines). The worker is
//!    `/bin/true` with `--max-concurrency 1`, so the scheduler drains the backlog at a trickle
//!    while admission is measured. Target on 2 cores with SQLite: ≥ 5,000 requests/s, p99 ≤
//!    20 ms.
//! 2. Scheduler under admission: a server with `/bin/true` and `--max-concurrency
//!    BENCH_MAX_CONCURRENCY` (32) and a pre-filled queue; launches/s (tasks reaching `running`,
//!    from the `ao_task_queue_wait_seconds` count) over a window of `BENCH_WINDOW_SECONDS`
//!    (5) with no admission load, then while the clients send `GET /healthz` at full speed
//!    (their CPU, without store writes), then while they submit at full speed; the ratios.
//!
//! `BENCH_REQUESTS` (20000) requests per admission phase; `BENCH_ONLY` (`admission`,
//! `scheduler`) picks one. `BENCH_DATABASE_URL` is passed to `serve --database-url` (e.g. a
//! `postgres://` URL, to run the same scenarios on PostgreSQL; each scenario then shares that
//! database, so give an empty one). Without `--bench` (e.g. `cargo test --all-targets`) it
//! runs a tiny smoke configuration.
//!
//! Run: `cargo bench -p agent-orchestrator --bench admission`.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{Server, Summary, client, metric, ms, summarize};

const TASK_BODY: &str = r#"{"prompt":"benchmark task: do nothing","labels":{"bench":"admission"}}"#;
/// Tasks that reached `running` (the histogram observes each start once).
const LAUNCHES: &str = "ao_task_queue_wait_seconds_count";

struct Config {
    clients: usize,
    requests: usize,
    warmup: usize,
    window: Duration,
    max_concurrency: u32,
    prefill: usize,
    database_url: Option<String>,
    only: Option<String>,
    smoke: bool,
}

fn env_num<T: std::str::FromStr>(k: &str, d: T) -> T {
    match std::env::var(k) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{k}={v:?} is not a valid number")),
        Err(_) => d,
    }
}

impl Config {
    fn from_env() -> Config {
        let smoke = !std::env::args().any(|a| a == "--bench");
        let (clients, requests, window, prefill) = if smoke {
            (4, 40, 0.2f64, 40)
        } else {
            (64, 20_000, 5.0, 20_000)
        };
        Config {
            clients: env_num("BENCH_CLIENTS", clients).max(1),
            requests: env_num("BENCH_REQUESTS", requests).max(1),
            warmup: if smoke { 8 } else { 1000 },
            window: Duration::from_secs_f64(env_num("BENCH_WINDOW_SECONDS", window).max(0.05)),
            max_concurrency: env_num("BENCH_MAX_CONCURRENCY", 32u32).max(1),
            prefill: env_num("BENCH_PREFILL", prefill),
            database_url: std::env::var("BENCH_DATABASE_URL")
                .ok()
                .filter(|s| !s.is_empty()),
            only: std::env::var("BENCH_ONLY").ok().filter(|s| !s.is_empty()),
            smoke,
        }
    }

    fn wants(&self, scenario: &str) -> bool {
        self.only
            .as_deref()
            .is_none_or(|o| o.split(',').any(|s| s.trim() == scenario))
    }

    fn server(&self, max_concurrency: u32) -> Server {
        let extra: Vec<String> = match &self.database_url {
            Some(url) => vec!["--database-url".into(), url.clone()],
            None => vec![],
        };
        Server::start_with(&["/bin/true"], max_concurrency, &extra)
    }
}

#[derive(Clone, Copy)]
enum Req {
    Health,
    Admit,
}

/// One request; its latency in ms. Panics on an unexpected status.
async fn one(c: &reqwest::Client, url: &str, r: Req) -> f64 {
    let t = Instant::now();
    let (resp, want) = match r {
        Req::Health => (c.get(url).send().await, 200),
        Req::Admit => (
            c.post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(TASK_BODY)
                .send()
                .await,
            202,
        ),
    };
    let resp = resp.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = resp.status();
    let body = resp.bytes().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let took = ms(t.elapsed());
    assert_eq!(
        status.as_u16(),
        want,
        "{url}: {}",
        String::from_utf8_lossy(&body)
    );
    took
}

struct Phase {
    wall: Duration,
    lat: Summary,
}

impl Phase {
    fn rps(&self) -> f64 {
        self.lat.n as f64 / self.wall.as_secs_f64()
    }
}

/// `clients` closed-loop clients; each stops after `share` requests or when `stop` is set.
async fn clients(
    c: &reqwest::Client,
    url: &str,
    r: Req,
    n: usize,
    clients: usize,
    stop: &Arc<AtomicBool>,
) -> Phase {
    let t = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let share = n / clients + usize::from(i < n % clients);
            let (c, url, stop) = (c.clone(), url.to_string(), stop.clone());
            tokio::spawn(async move {
                let mut v = Vec::with_capacity(share.min(1 << 20));
                while v.len() < share && !stop.load(Ordering::Relaxed) {
                    v.push(one(&c, &url, r).await);
                }
                v
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("client task panicked"));
    }
    Phase {
        wall: t.elapsed(),
        lat: summarize(&all),
    }
}

async fn phase(c: &reqwest::Client, url: &str, r: Req, n: usize, cfg: &Config) -> Phase {
    clients(c, url, r, n, cfg.clients, &Arc::new(AtomicBool::new(false))).await
}

fn print_phase(label: &str, p: &Phase) {
    println!(
        "  {label:<40} {:>7} {:>9.0} {:>9.3} {:>9.3} {:>9.3}",
        p.lat.n,
        p.rps(),
        p.lat.p50,
        p.lat.p99,
        p.lat.max
    );
}

async fn admission(cfg: &Config) {
    let s = cfg.server(1);
    let c = client();
    let (health, tasks) = (s.url("/healthz"), s.url("/api/v1/tasks"));
    phase(&c, &health, Req::Health, cfg.warmup, cfg).await;
    phase(&c, &tasks, Req::Admit, cfg.warmup, cfg).await;
    let h = phase(&c, &health, Req::Health, cfg.requests, cfg).await;
    let a = phase(&c, &tasks, Req::Admit, cfg.requests, cfg).await;
    let h2 = phase(&c, &health, Req::Health, cfg.requests, cfg).await;
    println!(
        "\n== 1. Admission: POST /api/v1/tasks vs GET /healthz, {} clients, same server ==",
        cfg.clients
    );
    println!(
        "  {:<40} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "phase", "n", "req/s", "p50 ms", "p99 ms", "max ms"
    );
    print_phase("GET /healthz", &h);
    print_phase("POST /api/v1/tasks", &a);
    print_phase("GET /healthz (after)", &h2);
    let base = (h.rps() + h2.rps()) / 2.0;
    println!(
        "  -> POST {:.0} req/s = {:.3}x /healthz ({:.0} req/s, mean of before and after); p50 {:.2} ms, p99 {:.2} ms{}",
        a.rps(),
        a.rps() / base,
        base,
        a.lat.p50,
        a.lat.p99,
        if cfg.smoke {
            ""
        } else if a.rps() >= 5000.0 && a.lat.p99 <= 20.0 {
            "  [target met]"
        } else {
            "  [target: >= 5000 req/s, p99 <= 20 ms]"
        }
    );
}

/// Launches per second over `window`, and the queue depth at its end.
async fn launch_rate(c: &reqwest::Client, s: &Server, window: Duration) -> (f64, f64) {
    let (before, t) = (metric(c, s, LAUNCHES).await, Instant::now());
    tokio::time::sleep(window).await;
    let after = metric(c, s, LAUNCHES).await;
    let rate = (after - before) / t.elapsed().as_secs_f64();
    (rate, metric(c, s, "ao_queue_depth").await)
}

/// The launch rate over a window while the clients send `r` to `url` at full speed.
async fn under(
    cfg: &Config,
    c: &reqwest::Client,
    url: &str,
    r: Req,
    s: &Server,
) -> (Phase, (f64, f64)) {
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (c, url, stop, n) = (c.clone(), url.to_string(), stop.clone(), cfg.clients);
        tokio::spawn(async move { clients(&c, &url, r, usize::MAX, n, &stop).await })
    };
    // Let the clients reach full speed before the window opens.
    tokio::time::sleep(cfg.window / 5).await;
    let rate = launch_rate(c, s, cfg.window).await;
    stop.store(true, Ordering::Relaxed);
    (load.await.expect("load"), rate)
}

async fn scheduler(cfg: &Config) {
    let s = cfg.server(cfg.max_concurrency);
    let c = client();
    let tasks = s.url("/api/v1/tasks");
    let fill = phase(&c, &tasks, Req::Admit, cfg.prefill.max(1), cfg).await;
    let (idle, depth_idle) = launch_rate(&c, &s, cfg.window).await;
    // The same clients on /healthz: the CPU the clients and the HTTP layer take from the
    // scheduler, without a store write.
    let (health, (busy, _)) = under(cfg, &c, &s.url("/healthz"), Req::Health, &s).await;
    let (flood, (loaded, depth_loaded)) = under(cfg, &c, &tasks, Req::Admit, &s).await;
    println!(
        "\n== 2. Scheduler: launches/s (worker /bin/true, --max-concurrency {}), {} clients submitting or not ==",
        cfg.max_concurrency, cfg.clients
    );
    println!(
        "  pre-filled {} tasks at {:.0} req/s; windows of {:.1} s",
        fill.lat.n,
        fill.rps(),
        cfg.window.as_secs_f64()
    );
    println!(
        "  no admission load:     {idle:>8.1} launches/s (queue depth after: {depth_idle:.0})"
    );
    println!(
        "  /healthz at {:>8.0}/s: {busy:>8.1} launches/s (same clients, no store writes)",
        health.rps()
    );
    println!(
        "  admission at {:>6.0}/s: {loaded:>8.1} launches/s (queue depth after: {depth_loaded:.0}; POST p50 {:.2} ms, p99 {:.2} ms)",
        flood.rps(),
        flood.lat.p50,
        flood.lat.p99
    );
    println!(
        "  -> launches under admission / without: {:.3}; under /healthz load / without: {:.3}",
        loaded / idle.max(f64::MIN_POSITIVE),
        busy / idle.max(f64::MIN_POSITIVE)
    );
    if depth_idle < 1.0 || depth_loaded < 1.0 {
        println!(
            "  (the queue ran dry in a window: that rate is a lower bound; raise BENCH_PREFILL)"
        );
    }
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cfg = Config::from_env();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "agent-orchestrator admission bench{}",
        if cfg.smoke {
            " (smoke run: not invoked with --bench)"
        } else {
            ""
        }
    );
    println!("  binary    {}", support::BIN);
    println!(
        "  machine   {cores} cores (client and server share them), loopback HTTP/1.1 keep-alive"
    );
    println!(
        "  database  {}",
        cfg.database_url
            .as_deref()
            .map_or("SQLite in the data dir (default)", |_| "BENCH_DATABASE_URL")
    );
    rt.block_on(async {
        if cfg.wants("admission") {
            admission(&cfg).await;
        }
        if cfg.wants("scheduler") {
            scheduler(&cfg).await;
        }
    });
}
