//! Opening a database made before the counters existed (migration 0001 only) seeds them from
//! its rows: the status counts, the queue bound and the next sequence numbers carry on.

use ao_core::lifecycle::TaskStatus;
use ao_core::store::conformance::{count_of, new_task};
use ao_core::store::{StoreError, TaskStore};
use ao_core::task::TaskId;
use ao_store_sqlite::SqliteStore;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

const OLD_SCHEMA: &str = include_str!("../migrations/0001_init.sql");

/// A database at schema version 1 with two queued tasks, one running task, 3 log lines and
/// 2 events of the running task.
async fn version_one(path: &std::path::Path) -> (TaskId, TaskId) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("0001_init.sql"), OLD_SCHEMA).unwrap();
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new().connect_with(opts).await.unwrap();
    let migrator = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
    migrator.run(&pool).await.unwrap();
    let (queued, running) = (TaskId::new(), TaskId::new());
    for (id, status) in [
        (queued, "queued"),
        (TaskId::new(), "queued"),
        (running, "running"),
    ] {
        sqlx::query(
            "INSERT INTO tasks (id, status, reason, spec, created_at, request_hash) \
             VALUES (?, ?, 'submitted', '{\"prompt\":\"p\",\"timeout_seconds\":60}', \
             '2026-01-01T00:00:00.000000Z', 'h')",
        )
        .bind(id.to_string())
        .bind(status)
        .execute(&pool)
        .await
        .unwrap();
    }
    for seq in 1..=3 {
        sqlx::query("INSERT INTO task_logs (task_id, seq, line, at) VALUES (?, ?, 'l', '2026-01-01T00:00:00.000000Z')")
            .bind(running.to_string())
            .bind(seq)
            .execute(&pool)
            .await
            .unwrap();
    }
    for seq in 1..=2 {
        sqlx::query("INSERT INTO task_events (task_id, seq, event, at) VALUES (?, ?, '{}', '2026-01-01T00:00:00.000000Z')")
            .bind(running.to_string())
            .bind(seq)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    (queued, running)
}

#[tokio::test]
async fn counters_are_seeded_from_existing_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let (queued, running) = version_one(&path).await;
    let s = SqliteStore::open(&path).await.unwrap();
    assert_eq!(count_of(&s, TaskStatus::Queued).await, 2);
    assert_eq!(count_of(&s, TaskStatus::Running).await, 1);
    let err = s.create(new_task("x", &[], None), 2).await.unwrap_err();
    assert!(matches!(err, StoreError::QueueFull { limit: 2 }), "{err}");
    s.create(new_task("x", &[], None), 3).await.unwrap();
    assert_eq!(s.log_count(running).await.unwrap(), 3);
    s.append_logs(running, &["next".into()]).await.unwrap();
    let lines = s.logs(running, 3, 10).await.unwrap();
    assert_eq!((lines[0].seq, lines[0].line.as_str()), (4, "next"));
    let last = s
        .append_events(running, &[serde_json::json!({"type": "x"})])
        .await
        .unwrap();
    assert_eq!(last, 3);
    assert_eq!(s.log_count(queued).await.unwrap(), 0);
}
