//! Black-box benchmark of `agent-orchestrator serve`: the real (release) binary runs as a
//! subprocess on 127.0.0.1:0 with a fresh data directory per scenario, and a reqwest client
//! measures it over loopback. Plain timing, no harness.
//!
//! 1. Admission: `POST /api/v1/tasks` with a small body, sequential and with concurrent
//!    clients, against `GET /healthz` measured on the same server just before (the baseline
//!    the ratios are taken against). The worker is `/bin/true` with `--max-concurrency 1`, so
//!    the scheduler drains the backlog in the background while admission is measured.
//! 2. Overhead per task beyond the agent's own run time: one task in flight at a time, with an
//!    agent that sleeps `BENCH_AGENT_SECONDS` and a zero-time agent (`/bin/true`); breakdown
//!    from the server's timestamps (created → scheduled → running → finished).
//! 3. Throughput: `BENCH_TASKS` tasks submitted at once with `--max-concurrency 1` and
//!    `BENCH_BATCH_CONCURRENCY`; tasks/s, efficiency against the ideal, hand-off gaps.
//!
//! Sizes come from the environment: `BENCH_ADMIT_REQUESTS` (2000 per phase),
//! `BENCH_ADMIT_CLIENTS` (16), `BENCH_TASKS` (50), `BENCH_AGENT_SECONDS` (0.2),
//! `BENCH_BATCH_CONCURRENCY` (4), `BENCH_POLL_MS` (5), `BENCH_ONLY` (comma-separated subset of
//! `admission,overhead,throughput`). Without `--bench` (e.g. `cargo test --all-targets`) it runs
//! a tiny smoke configuration.
//!
//! Run: `cargo bench -p agent-orchestrator --bench orchestrator`.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;
use support::{BIN, Server, Summary, client, fsync_probe, metric, ms, ms_between, summarize};
const TERMINAL: [&str; 4] = ["succeeded", "failed", "cancelled", "timed_out"];
const TASK_BODY: &str = r#"{"prompt":"benchmark task: do nothing","labels":{"bench":"admission"}}"#;

// ---------------------------------------------------------------------------------------------
// Configuration

struct Config {
    admit_requests: usize,
    admit_clients: usize,
    warmup: usize,
    tasks: usize,
    agent_secs: f64,
    batch_concurrency: u32,
    poll: Duration,
    only: Vec<String>,
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
        let (n, m) = if smoke { (50, 3) } else { (2000, 50) };
        Config {
            admit_requests: env_num("BENCH_ADMIT_REQUESTS", n).max(1),
            admit_clients: env_num("BENCH_ADMIT_CLIENTS", 16usize).max(1),
            warmup: if smoke { 5 } else { 100 },
            tasks: env_num("BENCH_TASKS", m).max(2),
            agent_secs: env_num("BENCH_AGENT_SECONDS", 0.2f64).max(0.0),
            batch_concurrency: env_num("BENCH_BATCH_CONCURRENCY", 4u32).max(1),
            poll: Duration::from_millis(env_num("BENCH_POLL_MS", 5u64).max(1)),
            only: std::env::var("BENCH_ONLY")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            smoke,
        }
    }

    fn wants(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == scenario)
    }
}

// ---------------------------------------------------------------------------------------------
// Scenario 1: admission

#[derive(Clone, Copy, PartialEq)]
enum Req {
    Health,
    Admit,
}

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

/// `n` requests, `clients` at a time (each client sends its share one after another).
async fn phase(c: &reqwest::Client, url: &str, r: Req, n: usize, clients: usize) -> Phase {
    let t = Instant::now();
    let lat: Vec<f64> = if clients <= 1 {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(one(c, url, r).await);
        }
        v
    } else {
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                let share = n / clients + usize::from(i < n % clients);
                let (c, url) = (c.clone(), url.to_string());
                tokio::spawn(async move {
                    let mut v = Vec::with_capacity(share);
                    for _ in 0..share {
                        v.push(one(&c, &url, r).await);
                    }
                    v
                })
            })
            .collect();
        let mut all = Vec::with_capacity(n);
        for h in handles {
            all.extend(h.await.expect("client task panicked"));
        }
        all
    };
    Phase {
        wall: t.elapsed(),
        lat: summarize(&lat),
    }
}

struct AdmissionRun {
    mode: &'static str,
    clients: usize,
    health: Phase,
    admit: Phase,
    health_drain: Phase,
    drained: f64,
    queued_after: f64,
}

async fn admission(cfg: &Config, clients: usize) -> AdmissionRun {
    let s = Server::start(&["/bin/true"], 1);
    let c = client();
    let (health_url, tasks_url) = (s.url("/healthz"), s.url("/api/v1/tasks"));
    phase(&c, &health_url, Req::Health, cfg.warmup, clients).await;
    phase(&c, &tasks_url, Req::Admit, cfg.warmup, clients).await;
    let health = phase(&c, &health_url, Req::Health, cfg.admit_requests, clients).await;
    let finished_before = metric(&c, &s, "ao_tasks_finished").await;
    let admit = phase(&c, &tasks_url, Req::Admit, cfg.admit_requests, clients).await;
    let drained = metric(&c, &s, "ao_tasks_finished").await - finished_before;
    let queued_after = metric(&c, &s, "ao_queue_depth").await;
    let health_drain = phase(&c, &health_url, Req::Health, cfg.admit_requests, clients).await;
    AdmissionRun {
        mode: if clients <= 1 {
            "sequential"
        } else {
            "concurrent"
        },
        clients,
        health,
        admit,
        health_drain,
        drained,
        queued_after,
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios 2 and 3: tasks through the scheduler

#[derive(Clone)]
struct Agent {
    label: String,
    command: Vec<String>,
    /// The agent's own nominal run time, in ms.
    nominal_ms: f64,
}

impl Agent {
    fn sleep(secs: f64) -> Agent {
        Agent {
            label: format!("sleep {secs}"),
            command: vec!["/bin/sleep".into(), secs.to_string()],
            nominal_ms: secs * 1e3,
        }
    }

    fn true_() -> Agent {
        Agent {
            label: "/bin/true".into(),
            command: vec!["/bin/true".into()],
            nominal_ms: 0.0,
        }
    }

    fn argv(&self) -> Vec<&str> {
        self.command.iter().map(String::as_str).collect()
    }

    /// fork + exec + run + wait of the agent alone, without the orchestrator, in ms.
    fn bare(&self, runs: usize) -> Summary {
        let xs: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                let st = Command::new(&self.command[0])
                    .args(&self.command[1..])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .expect("running the agent");
                assert!(st.success(), "{} failed: {st}", self.label);
                ms(t.elapsed())
            })
            .collect();
        summarize(&xs)
    }
}

/// One finished task, with the client's and the server's view of its timing.
struct Timing {
    /// Client: from sending the POST to seeing a terminal status (0 when not measured).
    e2e_ms: f64,
    created: DateTime<Utc>,
    scheduled: DateTime<Utc>,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
}

fn at(v: &Value, field: &str) -> DateTime<Utc> {
    v[field]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("task without a valid `{field}`: {v:#}"))
}

impl Timing {
    fn from_task(t: &Value, e2e_ms: f64) -> Timing {
        assert_eq!(t["status"], "succeeded", "task did not succeed: {t:#}");
        let started = at(t, "started_at");
        let scheduled = t["history"]
            .as_array()
            .and_then(|h| h.iter().find(|r| r["reason"] == "scheduled"))
            .map(|r| at(r, "at"))
            .unwrap_or(started);
        Timing {
            e2e_ms,
            created: at(t, "created_at"),
            scheduled,
            started,
            finished: at(t, "finished_at"),
        }
    }
}

async fn submit(c: &reqwest::Client, s: &Server) -> String {
    let r = c
        .post(s.url("/api/v1/tasks"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(TASK_BODY)
        .send()
        .await
        .expect("submit");
    let status = r.status();
    let v: Value = r.json().await.expect("submit body");
    assert_eq!(status.as_u16(), 202, "{v:#}");
    v["id"].as_str().expect("task id").to_string()
}

/// Poll the task until it is terminal; bounded by `deadline`.
async fn wait_terminal(
    c: &reqwest::Client,
    s: &Server,
    id: &str,
    poll: Duration,
    deadline: Instant,
) -> Value {
    let url = s.url(&format!("/api/v1/tasks/{id}"));
    loop {
        let t: Value = c
            .get(&url)
            .send()
            .await
            .expect("get task")
            .json()
            .await
            .expect("task body");
        if TERMINAL.contains(&t["status"].as_str().unwrap_or_default()) {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "task {id} not finished in time: {t:#}"
        );
        tokio::time::sleep(poll).await;
    }
}

fn deadline_for(cfg: &Config, agent: &Agent, tasks: usize, concurrency: u32) -> Instant {
    let per = agent.nominal_ms / 1e3 + 0.5;
    Instant::now()
        + Duration::from_secs_f64(60.0 + per * tasks as f64 / f64::from(concurrency))
        + cfg.poll
}

/// Scenario 2: one task in flight at a time (`--max-concurrency 1`), so that no task waits
/// behind another and everything beyond the agent's run time is the orchestrator's.
async fn one_at_a_time(cfg: &Config, agent: &Agent) -> Vec<Timing> {
    let s = Server::start(&agent.argv(), 1);
    let c = client();
    let mut out = Vec::with_capacity(cfg.tasks);
    let warmup = 2;
    for i in 0..warmup + cfg.tasks {
        let t = Instant::now();
        let id = submit(&c, &s).await;
        let task = wait_terminal(&c, &s, &id, cfg.poll, deadline_for(cfg, agent, 1, 1)).await;
        let e2e = ms(t.elapsed());
        if i >= warmup {
            out.push(Timing::from_task(&task, e2e));
        }
    }
    out
}

struct Batch {
    concurrency: u32,
    timings: Vec<Timing>,
    submit_wall: Duration,
}

/// Scenario 3: all tasks submitted back to back, then drained by the scheduler.
async fn batch(cfg: &Config, agent: &Agent, concurrency: u32) -> Batch {
    let s = Server::start(&agent.argv(), concurrency);
    let c = client();
    for _ in 0..2 {
        let id = submit(&c, &s).await;
        wait_terminal(&c, &s, &id, cfg.poll, deadline_for(cfg, agent, 1, 1)).await;
    }
    let t = Instant::now();
    let mut ids = Vec::with_capacity(cfg.tasks);
    for _ in 0..cfg.tasks {
        ids.push(submit(&c, &s).await);
    }
    let submit_wall = t.elapsed();
    let deadline = deadline_for(cfg, agent, cfg.tasks, concurrency);
    // Tasks start in submission order, so waiting for each in turn costs little polling.
    let poll = cfg.poll.max(Duration::from_millis(20));
    let mut tasks = Vec::with_capacity(ids.len());
    for id in &ids {
        tasks.push(wait_terminal(&c, &s, id, poll, deadline).await);
    }
    Batch {
        concurrency,
        timings: tasks.iter().map(|t| Timing::from_task(t, 0.0)).collect(),
        submit_wall,
    }
}

// ---------------------------------------------------------------------------------------------
// Output

fn row(label: &str, s: &Summary) {
    println!(
        "  {label:<48} {:>5} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
        s.n, s.mean, s.p50, s.p99, s.max
    );
}

fn header(first: &str) {
    println!(
        "  {first:<48} {:>5} {:>9} {:>9} {:>9} {:>9}",
        "n", "mean ms", "p50 ms", "p99 ms", "max ms"
    );
}

fn print_admission(runs: &[AdmissionRun]) {
    println!("\n== 1. Admission: POST /api/v1/tasks vs GET /healthz (same server, same run) ==");
    println!(
        "   worker /bin/true, --max-concurrency 1, --max-queued 1000000; the scheduler drains"
    );
    println!(
        "   the backlog in the background (1 worker process at a time) while POSTs are measured.\n"
    );
    println!(
        "  {:<34} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "phase", "n", "conc", "req/s", "mean ms", "p50 ms", "p99 ms", "max ms"
    );
    for r in runs {
        for (label, p) in [
            ("GET /healthz (idle)", &r.health),
            ("POST /api/v1/tasks", &r.admit),
            ("GET /healthz (while draining)", &r.health_drain),
        ] {
            println!(
                "  {:<34} {:>6} {:>6} {:>9.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                format!("{label} [{}]", &r.mode[..3]),
                p.lat.n,
                r.clients,
                p.rps(),
                p.lat.mean,
                p.lat.p50,
                p.lat.p99,
                p.lat.max
            );
        }
        println!(
            "  -> {}: POST/healthz  throughput {:.3}x, p50 latency {:.1}x, p99 latency {:.1}x; \
             {:.0} tasks drained during the POST phase, {:.0} still queued after it",
            r.mode,
            r.admit.rps() / r.health.rps(),
            r.admit.lat.p50 / r.health.lat.p50,
            r.admit.lat.p99 / r.health.lat.p99,
            r.drained,
            r.queued_after
        );
    }
}

fn print_overhead(agent: &Agent, bare: &Summary, ts: &[Timing]) {
    let nominal = agent.nominal_ms;
    println!(
        "\n-- agent `{}` (nominal {nominal:.0} ms; run alone, fork+exec+wait takes p50 {:.2} ms) --",
        agent.label, bare.p50
    );
    header("per task (one in flight, --max-concurrency 1)");
    let col = |f: &dyn Fn(&Timing) -> f64| summarize(&ts.iter().map(f).collect::<Vec<_>>());
    let e2e = col(&|t| t.e2e_ms);
    let total = col(&|t| ms_between(t.created, t.finished));
    let over = col(&|t| ms_between(t.created, t.finished) - nominal);
    row("client: submit -> terminal seen (poll)", &e2e);
    row(
        "client overhead = that - agent time",
        &col(&|t| t.e2e_ms - nominal),
    );
    row("server: created -> finished", &total);
    row("OVERHEAD = created -> finished - agent time", &over);
    // The agent's own run as measured alone in this bench (fork, exec, run, wait), so that
    // the machine's speed and load at the time cancel out of the ratio.
    let beyond_bare = col(&|t| ms_between(t.created, t.finished) - bare.p50);
    row(
        "  same-run: created -> finished - bare agent run",
        &beyond_bare,
    );
    row(
        "  scheduling latency: created -> started",
        &col(&|t| ms_between(t.created, t.started)),
    );
    row(
        "    pickup: created -> scheduled",
        &col(&|t| ms_between(t.created, t.scheduled)),
    );
    row(
        "    launch: scheduled -> started (running)",
        &col(&|t| ms_between(t.scheduled, t.started)),
    );
    row(
        "  finish latency: started -> finished - agent",
        &col(&|t| ms_between(t.started, t.finished) - nominal),
    );
    if nominal > 0.0 {
        println!(
            "  -> overhead / agent time: mean {:.3}, p50 {:.3}, p99 {:.3}; beyond a bare fork+exec: mean {:.2} ms",
            over.mean / nominal,
            over.p50 / nominal,
            over.p99 / nominal,
            total.mean - bare.mean
        );
        println!(
            "  -> same-run ratio (created -> finished) / bare agent run: p50 {:.3} (overhead p50 {:.2} ms)",
            total.p50 / bare.p50,
            beyond_bare.p50
        );
    } else {
        println!(
            "  -> zero-time agent: whole lifecycle mean {:.2} ms = {:.0}x a bare fork+exec+wait of the agent ({:.2} ms)",
            total.mean,
            total.mean / bare.mean,
            bare.mean
        );
    }
}

fn print_batches(agent: &Agent, bare: &Summary, batches: &[Batch]) {
    for b in batches {
        let ts = &b.timings;
        let first_created = ts.iter().map(|t| t.created).min().expect("tasks");
        let first_started = ts.iter().map(|t| t.started).min().expect("tasks");
        let last_finished = ts.iter().map(|t| t.finished).max().expect("tasks");
        let span_s = ms_between(first_created, last_finished) / 1e3;
        let tput = ts.len() as f64 / span_s;
        // Ideal: `concurrency` agents back to back, each taking its bare run time. Meaningless
        // for a zero-time agent (that is bounded by process spawning on the cores).
        let (ideal, effic) = if agent.nominal_ms > 0.0 {
            let ideal = f64::from(b.concurrency) * 1e3 / bare.mean;
            (
                format!("{ideal:.1}"),
                format!("{:.1}%", 100.0 * tput / ideal),
            )
        } else {
            ("-".into(), "-".into())
        };
        let per_task =
            ms_between(first_started, last_finished) * f64::from(b.concurrency) / ts.len() as f64;
        println!(
            "  {:<12} {:>4} {:>5} {:>10.1} {:>10} {:>9} {:>12.1} {:>13.2} {:>10.2}",
            agent.label,
            b.concurrency,
            ts.len(),
            tput,
            ideal,
            effic,
            per_task,
            per_task - agent.nominal_ms,
            ms(b.submit_wall),
        );
    }
    if let Some(b) = batches.iter().find(|b| b.concurrency == 1) {
        let mut ts: Vec<&Timing> = b.timings.iter().collect();
        ts.sort_by_key(|t| t.started);
        let gaps: Vec<f64> = ts
            .windows(2)
            .map(|w| ms_between(w[0].finished, w[1].started))
            .collect();
        if !gaps.is_empty() {
            let g = summarize(&gaps);
            println!(
                "  {:<12}   c=1 hand-off gap (previous finished -> next started): mean {:.2}, p50 {:.2}, p99 {:.2}, max {:.2} ms",
                agent.label, g.mean, g.p50, g.p99, g.max
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cfg = Config::from_env();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();

    println!(
        "agent-orchestrator black-box bench{}",
        if cfg.smoke {
            " (smoke run: not invoked with --bench)"
        } else {
            ""
        }
    );
    println!("  binary    {BIN}");
    println!(
        "  machine   {cores} cores available (client and server share them), loopback HTTP/1.1 keep-alive"
    );
    println!(
        "  sizes     BENCH_ADMIT_REQUESTS={} BENCH_ADMIT_CLIENTS={} BENCH_TASKS={} BENCH_AGENT_SECONDS={} \
         BENCH_BATCH_CONCURRENCY={} BENCH_POLL_MS={}",
        cfg.admit_requests,
        cfg.admit_clients,
        cfg.tasks,
        cfg.agent_secs,
        cfg.batch_concurrency,
        cfg.poll.as_millis()
    );

    rt.block_on(async {
        if cfg.wants("admission") {
            let seq = admission(&cfg, 1).await;
            let conc = admission(&cfg, cfg.admit_clients).await;
            print_admission(&[seq, conc]);
            let f = fsync_probe(200);
            println!(
                "  reference: append 256 B + fdatasync in the temp dir's file system: mean {:.3}, p50 {:.3}, p99 {:.3} ms",
                f.mean, f.p50, f.p99
            );
        }

        let agents = if cfg.smoke { vec![Agent::true_()] } else { vec![Agent::sleep(cfg.agent_secs), Agent::true_()] };
        let bares: Vec<Summary> = agents
            .iter()
            .map(|a| a.bare(if a.nominal_ms > 0.0 { 10 } else { 50 }))
            .collect();

        if cfg.wants("overhead") {
            println!("\n== 2. Orchestrator overhead per task beyond the agent's own run time ==");
            println!("   one task in flight at a time: submit, poll GET /api/v1/tasks/{{id}} every {} ms", cfg.poll.as_millis());
            println!("   until terminal, next. Server times are the task's created_at / history `scheduled` /");
            println!("   started_at (worker running) / finished_at (exit recorded).");
            for (agent, bare) in agents.iter().zip(&bares) {
                let ts = one_at_a_time(&cfg, agent).await;
                print_overhead(agent, bare, &ts);
            }
        }

        if cfg.wants("throughput") {
            println!("\n== 3. Throughput: {} tasks submitted back to back, drained by the scheduler ==", cfg.tasks);
            println!("   tasks/s = n / (first created_at -> last finished_at); ideal = concurrency / bare agent run time;");
            println!("   per-task = (first started -> last finished) x concurrency / n.\n");
            println!(
                "  {:<12} {:>4} {:>5} {:>10} {:>10} {:>9} {:>12} {:>13} {:>10}",
                "agent", "conc", "n", "tasks/s", "ideal/s", "effic.", "per-task ms", "overhead ms", "submit ms"
            );
            let mut concs = vec![1, cfg.batch_concurrency];
            concs.dedup();
            for (agent, bare) in agents.iter().zip(&bares) {
                let mut bs = Vec::new();
                for &c in &concs {
                    bs.push(batch(&cfg, agent, c).await);
                }
                print_batches(agent, bare, &bs);
            }
        }
    });
    println!(
        "\ntotal bench time {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
