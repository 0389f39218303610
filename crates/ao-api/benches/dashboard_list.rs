//! Server time of the dashboard's tasks page with 100,000 tasks in the store (issue: p99 at
//! most 50 ms). Fills a SQLite store with 100,000 finished tasks spread over 57 days (a
//! realistic history: labels, results with costs, one in ten failed, the last ones today),
//! then renders pages through the router without a socket, and prints percentiles for:
//! the first page, a later page (cursor), status and label filters, the prompt search (one
//! that matches nothing reads every prompt), and the two-second live fragment.
//!
//! `cargo bench -p ao-api --bench dashboard_list` (`-- --quick` for a smoke run)

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;
use support::{App, Options};

const TASKS: i64 = 100_000;

/// Insert `TASKS` finished tasks, their labels and the status counters in one transaction.
async fn fill(conn: &mut SqliteConnection) {
    let mut tx = conn.begin().await.expect("begin");
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
         INSERT INTO tasks (id, status, reason, spec, created_at, started_at, finished_at, result, request_hash) \
         SELECT printf('00000000-0000-7000-8000-%012d', i), \
                CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'succeeded' END, 'completed', \
                json_object('prompt', 'Bench task ' || i || ': fix the flaky test in module ' || (i % 97) || char(10) || 'details', \
                            'timeout_seconds', 3600, \
                            'labels', json_object('team', CASE i % 3 WHEN 0 THEN 'web' WHEN 1 THEN 'core' ELSE 'data' END), \
                            'repository', json_object('url', 'https://github.com/acme/app', 'ref', 'main')), \
                strftime('%Y-%m-%dT%H:%M:%S.000000Z', 'now', '-' || ((?1 - i) * 50 + 70) || ' seconds'), \
                strftime('%Y-%m-%dT%H:%M:%S.000000Z', 'now', '-' || ((?1 - i) * 50 + 65) || ' seconds'), \
                strftime('%Y-%m-%dT%H:%M:%S.000000Z', 'now', '-' || ((?1 - i) * 50 + (i % 60)) || ' seconds'), \
                json_object('outcome', 'answered', 'cost_usd', 0.01 + (i % 50) / 1000.0, 'num_turns', 3), \
                'fill' FROM n",
    )
    .bind(TASKS)
    .execute(&mut *tx)
    .await
    .expect("fill tasks");
    sqlx::query(
        "INSERT INTO task_labels (task_id, key, value) \
         SELECT id, 'team', json_extract(spec, '$.labels.team') FROM tasks",
    )
    .execute(&mut *tx)
    .await
    .expect("fill labels");
    sqlx::query(
        "UPDATE task_counts SET n = (SELECT COUNT(*) FROM tasks WHERE tasks.status = task_counts.status)",
    )
    .execute(&mut *tx)
    .await
    .expect("fill counters");
    tx.commit().await.expect("commit");
    sqlx::query("ANALYZE")
        .execute(&mut *conn)
        .await
        .expect("analyze");
}

fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[i]
}

async fn time(app: &App, uri: &str, samples: usize) -> Vec<Duration> {
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let req = Request::builder()
            .uri(uri)
            .header(header::ACCEPT, "text/html")
            .body(Body::empty())
            .expect("request");
        let t = Instant::now();
        let r = app.send(req).await;
        out.push(t.elapsed());
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text());
        let text = r.text();
        assert!(
            text.contains("Bench task") || uri.contains("nowhere"),
            "{uri} lists tasks"
        );
    }
    out
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let samples = if quick { 5 } else { 300 };
    let app = App::with(Options {
        tokens: false,
        ..Options::default()
    })
    .await;
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", app.db_path().display()))
        .await
        .expect("connect");
    let t = Instant::now();
    fill(&mut conn).await;
    println!("filled {TASKS} tasks in {:.1?}", t.elapsed());
    let cursor = TASKS - 5_000;
    let cases = [
        ("tasks page (first 50)", "/".to_string()),
        ("tasks page, later (cursor)", format!("/?cursor={cursor}")),
        ("status=failed", "/?status=failed".to_string()),
        ("label team=web", "/?label=team%3Dweb".to_string()),
        ("live fragment /ui/rows", "/ui/rows".to_string()),
        ("search q=module 42", "/?q=module+42".to_string()),
        (
            "search, no match (whole scan)",
            "/?q=nowhere+to+be+found".to_string(),
        ),
    ];
    time(&app, "/", 20).await;
    let mut first_p99 = Duration::ZERO;
    for (name, uri) in &cases {
        let mut s = time(&app, uri, samples).await;
        let (p50, p99) = (quantile(&mut s, 0.5), quantile(&mut s, 0.99));
        if uri == "/" {
            first_p99 = p99;
        }
        println!("{name:<30} p50 {p50:>10.3?}  p99 {p99:>10.3?}");
    }
    println!("tasks page p99 with {TASKS} tasks: {first_p99:.3?} (target: at most 50 ms)");
}
