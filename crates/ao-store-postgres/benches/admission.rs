//! Store-level admission benchmark of `PgStore` on a real PostgreSQL server
//! (`scripts/postgres-test.sh start`), every phase on a fresh database:
//!
//! 1. Creates/s with `BENCH_CLIENTS` concurrent callers (64) making `BENCH_CREATES` creates
//!    (8,000) in all, first with admission batches of one (one transaction per create, the
//!    "before"), then with the default batch bound (the "after"); the ratio is of the same run.
//!    Batch counts and sizes come from `PgStore::admission_stats`.
//! 2. A scheduler's transitions (`queued -> starting`, one at a time, as the scheduler makes
//!    them) with no admission load, then while the callers above saturate admission: rate
//!    and p50/p99 latency.
//!
//! Without `--bench` (e.g. `cargo test --all-targets`) it runs a tiny smoke configuration.
//! Run: `cargo bench -p ao-store-postgres --bench admission` (with `AO_TEST_DATABASE_URL` set
//! or the test server's URL file in place).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ao_core::lifecycle::{Reason, TaskStatus};
use ao_core::store::conformance::new_task;
use ao_core::store::{Created, TaskStore, Transition};
use ao_core::task::TaskId;
use ao_store_postgres::{PgOptions, PgStore};
use ao_testkit::postgres::{TestDatabase, fresh_database};

struct Config {
    creates: usize,
    clients: usize,
    transitions: usize,
}

fn env_num(k: &str, d: usize) -> usize {
    match std::env::var(k) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{k}={v:?} is not a number")),
        Err(_) => d,
    }
}

impl Config {
    fn from_env() -> Config {
        let smoke = !std::env::args().any(|a| a == "--bench");
        let (creates, clients, transitions) = if smoke { (64, 8, 10) } else { (8000, 64, 300) };
        Config {
            creates: env_num("BENCH_CREATES", creates).max(1),
            clients: env_num("BENCH_CLIENTS", clients).max(1),
            transitions: env_num("BENCH_TRANSITIONS", transitions).max(1),
        }
    }
}

async fn open(batch: usize) -> (PgStore, TestDatabase) {
    let db = fresh_database().await;
    let options = PgOptions {
        admission_batch: batch,
        ..PgOptions::default()
    };
    let store = PgStore::connect(db.url(), options)
        .await
        .expect("connect to the test database");
    (store, db)
}

/// `total` creates from `clients` concurrent callers (fewer if `stop` is set first); returns
/// how many were made and the seconds taken.
async fn admit(
    store: &PgStore,
    total: usize,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> (usize, f64) {
    let started = Instant::now();
    let per_client = total.div_ceil(clients);
    let mut handles = Vec::new();
    for c in 0..clients {
        let store = store.clone();
        let stop = stop.clone();
        handles.push(tokio::spawn(async move {
            let mut made = 0;
            for i in 0..per_client {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let task = new_task(&format!("c{c}-{i}"), &[("bench", "admission")], None);
                match store.create(task, usize::MAX).await.expect("create") {
                    Created::New(_) => made += 1,
                    Created::Existing(t) => panic!("no key, yet existing {}", t.id),
                }
            }
            made
        }));
    }
    let mut made = 0;
    for h in handles {
        made += h.await.expect("client panicked");
    }
    (made, started.elapsed().as_secs_f64())
}

/// Creates/s with batches of at most `batch`; prints the figures.
async fn admission(cfg: &Config, batch: usize, label: &str) -> f64 {
    let (store, _db) = open(batch).await;
    let (made, secs) = admit(&store, cfg.creates, cfg.clients, Arc::default()).await;
    let rate = made as f64 / secs;
    let stats = store.admission_stats();
    println!(
        "admission [{label}]: {made} creates from {} clients in {secs:.2} s = {rate:.0} creates/s; \
         {} batches, mean {:.1}, largest {}",
        cfg.clients,
        stats.batches,
        stats.tasks as f64 / stats.batches.max(1) as f64,
        stats.largest,
    );
    rate
}

/// `n` scheduler claims (`queued -> starting`) one after another: per-claim latencies.
async fn claims(store: &PgStore, ids: &[TaskId]) -> Vec<Duration> {
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        let t = Instant::now();
        store
            .transition(
                id,
                TaskStatus::Queued,
                Transition::new(TaskStatus::Starting, Reason::Scheduled),
            )
            .await
            .expect("claim");
        out.push(t.elapsed());
    }
    out
}

fn summary(mut lat: Vec<Duration>) -> String {
    lat.sort();
    let total: Duration = lat.iter().sum();
    let at = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize];
    format!(
        "{:.0} claims/s, p50 {:.2} ms, p99 {:.2} ms",
        lat.len() as f64 / total.as_secs_f64(),
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3
    )
}

/// Scheduler claims alone, then while admission is saturated.
async fn scheduler(cfg: &Config) {
    let (store, _db) = open(PgOptions::default().admission_batch).await;
    let mut ids = Vec::new();
    for i in 0..2 * cfg.transitions {
        let task = new_task(&format!("s{i}"), &[], None);
        match store.create(task, usize::MAX).await.expect("create") {
            Created::New(t) => ids.push(t.id),
            Created::Existing(t) => panic!("existing {}", t.id),
        }
    }
    let (idle, busy) = ids.split_at(cfg.transitions);
    let alone = summary(claims(&store, idle).await);
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (store, stop) = (store.clone(), stop.clone());
        let (clients, creates) = (cfg.clients, usize::MAX / 2);
        tokio::spawn(async move { admit(&store, creates, clients, stop).await })
    };
    let before = store.admission_stats().tasks;
    let loaded = claims(&store, busy).await;
    let admitted = store.admission_stats().tasks - before;
    let secs: f64 = loaded.iter().sum::<Duration>().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    load.await.expect("load panicked");
    println!("scheduler claims, no admission:  {alone}");
    println!(
        "scheduler claims, saturated:     {} (meanwhile {:.0} creates/s)",
        summary(loaded),
        admitted as f64 / secs
    );
}

#[tokio::main]
async fn main() {
    let cfg = Config::from_env();
    let before = admission(&cfg, 1, "batches of 1").await;
    let after = admission(&cfg, PgOptions::default().admission_batch, "batched").await;
    println!(
        "admission ratio batched / batches of 1: {:.2}",
        after / before
    );
    scheduler(&cfg).await;
}
