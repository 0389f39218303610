//! Append-only per-task sequences: worker output lines and agent events share one shape
//! (task id, 1-based sequence number, text, time).

use ao_core::store::StoreResult;
use ao_core::task::TaskId;
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, QueryBuilder, Row, Sqlite, SqlitePool};

use crate::row::{parse_ts, ts};
use crate::{SqliteStore, db_err};

/// Rows per INSERT statement, well under SQLite's bound-parameter limit.
const CHUNK: usize = 200;

pub(crate) async fn last_seq(pool: &SqlitePool, table: &str, id: TaskId) -> StoreResult<i64> {
    let sql = format!("SELECT COALESCE(MAX(seq), 0) FROM {table} WHERE task_id = ?");
    sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_one(pool)
        .await
        .map_err(db_err)
}

/// Append texts after the current last sequence number; returns the new last one.
pub(crate) async fn append<'a>(
    store: &SqliteStore,
    table: &str,
    column: &str,
    id: TaskId,
    texts: impl Iterator<Item = &'a str>,
) -> StoreResult<i64> {
    let texts: Vec<&str> = texts.collect();
    let mut tx = store.writer.begin().await.map_err(db_err)?;
    let sql = format!("SELECT COALESCE(MAX(seq), 0) FROM {table} WHERE task_id = ?");
    let mut seq: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
    if texts.is_empty() {
        return Ok(seq);
    }
    let now = ts(Utc::now());
    for chunk in texts.chunks(CHUNK) {
        let mut b: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("INSERT INTO {table} (task_id, seq, {column}, at) "));
        b.push_values(chunk, |mut row, text| {
            seq += 1;
            row.push_bind(id.to_string())
                .push_bind(seq)
                .push_bind(*text)
                .push_bind(now.clone());
        });
        b.build().execute(&mut *tx).await.map_err(db_err)?;
    }
    tx.commit().await.map_err(db_err)?;
    store.changes.bump();
    Ok(seq)
}

pub(crate) async fn read(
    store: &SqliteStore,
    table: &str,
    column: &str,
    id: TaskId,
    after: i64,
    limit: usize,
) -> StoreResult<Vec<(i64, String, DateTime<Utc>)>> {
    let sql = format!(
        "SELECT seq, {column} AS text, at FROM {table} WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(id.to_string())
        .bind(after)
        .bind(limit as i64)
        .fetch_all(&store.reader)
        .await
        .map_err(db_err)?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("seq").map_err(db_err)?,
                r.try_get("text").map_err(db_err)?,
                parse_ts(&r.try_get::<String, _>("at").map_err(db_err)?)?,
            ))
        })
        .collect()
}
