//! Does submitting slow down as the queue grows? Measures `create` (the store's share of
//! `POST /api/v1/tasks`, run under the write lock) with an empty queue and with 100,000
//! queued tasks, in the same run, and prints the ratio. The queue bound reads a counter, so
//! the ratio should stay near 1. For reference it also times the `COUNT(*)` of queued rows
//! that the bound used to run on every submission.
//!
//! `cargo bench -p ao-store-sqlite --bench queue_depth`

use std::time::{Duration, Instant};

use ao_core::store::TaskStore;
use ao_core::store::conformance::new_task;
use ao_store_sqlite::SqliteStore;
use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;

const SAMPLES: usize = 300;
const QUEUED: i64 = 100_000;
const BOUND: usize = 1_000_000;

fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[i]
}

async fn creates(store: &SqliteStore, label: &str) -> Vec<Duration> {
    let mut out = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let task = new_task(&format!("{label}-{i}"), &[("team", "bench")], None);
        let t = Instant::now();
        store.create(task, BOUND).await.expect("create");
        out.push(t.elapsed());
    }
    out
}

/// Add `QUEUED` queued tasks in one transaction, keeping the counter in step.
async fn fill(conn: &mut SqliteConnection) {
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) \
         INSERT INTO tasks (id, status, reason, spec, created_at, request_hash) \
         SELECT printf('00000000-0000-7000-8000-%012d', i), 'queued', 'submitted', \
                '{\"prompt\":\"fill\",\"timeout_seconds\":60}', \
                '2026-01-01T00:00:00.000000Z', 'fill' FROM n",
    )
    .bind(QUEUED)
    .execute(&mut *tx)
    .await
    .expect("fill tasks");
    sqlx::query("UPDATE task_counts SET n = n + ? WHERE status = 'queued'")
        .bind(QUEUED)
        .execute(&mut *tx)
        .await
        .expect("fill counter");
    tx.commit().await.expect("commit");
}

fn report(name: &str, samples: &mut [Duration]) -> Duration {
    let p50 = quantile(samples, 0.5);
    let p90 = quantile(samples, 0.9);
    println!("{name:<28} p50 {p50:>10.3?}  p90 {p90:>10.3?}");
    p50
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.db");
    let store = SqliteStore::open(&path).await.expect("open");
    creates(&store, "warm").await;
    let mut empty = creates(&store, "empty").await;
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect");
    fill(&mut conn).await;
    let mut full = creates(&store, "full").await;
    let mut counts = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tasks WHERE status = 'queued'")
            .fetch_one(&mut conn)
            .await
            .expect("count");
        counts.push(t.elapsed());
    }
    let a = report("create, ~0 queued", &mut empty);
    let b = report("create, 100k queued", &mut full);
    report("COUNT(*) of 100k queued", &mut counts);
    println!(
        "ratio p50 (100k / ~0 queued): {:.2}",
        b.as_secs_f64() / a.as_secs_f64()
    );
}
