//! Append-only per-task sequences: worker output lines and agent events share one shape
//! (task id, 1-based sequence number, text, time). An append reserves its range by bumping
//! the task's counter (`log_seq` or `event_seq`) with `RETURNING` in the writer's batch
//! transaction, so concurrent appends get disjoint, contiguous ranges; the `(task_id, seq)`
//! primary key backs that up. Reads go to the read-only pool.

use ao_core::store::{StoreError, StoreResult};
use ao_core::task::TaskId;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use crate::row::{parse_ts, ts};
use crate::{SqliteStore, db_err};

/// Rows per INSERT statement (4 parameters each), well under SQLite's parameter limit.
const CHUNK: usize = 200;

/// Which sequence; each variant names its static statements.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    Logs,
    Events,
}

impl Stream {
    fn reserve(self) -> &'static str {
        match self {
            Stream::Logs => "UPDATE tasks SET log_seq = log_seq + ? WHERE id = ? RETURNING log_seq",
            Stream::Events => {
                "UPDATE tasks SET event_seq = event_seq + ? WHERE id = ? RETURNING event_seq"
            }
        }
    }

    fn last(self) -> &'static str {
        match self {
            Stream::Logs => "SELECT log_seq FROM tasks WHERE id = ?",
            Stream::Events => "SELECT event_seq FROM tasks WHERE id = ?",
        }
    }

    fn insert(self) -> &'static str {
        match self {
            Stream::Logs => "INSERT INTO task_logs (task_id, seq, line, at) ",
            Stream::Events => "INSERT INTO task_events (task_id, seq, event, at) ",
        }
    }

    fn read(self) -> &'static str {
        match self {
            Stream::Logs => {
                "SELECT seq, line AS text, at FROM task_logs \
                 WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?"
            }
            Stream::Events => {
                "SELECT seq, event AS text, at FROM task_events \
                 WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?"
            }
        }
    }
}

impl SqliteStore {
    /// The last sequence number; 0 for an unknown task.
    pub(crate) async fn last_seq(&self, stream: Stream, id: TaskId) -> StoreResult<i64> {
        let last = sqlx::query_scalar::<_, i64>(stream.last())
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .map_err(db_err)?;
        Ok(last.unwrap_or(0))
    }

    pub(crate) async fn read(
        &self,
        stream: Stream,
        id: TaskId,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<(i64, String, DateTime<Utc>)>> {
        let rows = sqlx::query(stream.read())
            .bind(id.to_string())
            .bind(after)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.reader)
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
}

/// Append a batch numbered from `first_seq`, skipping what is already stored; the check and
/// the append share one write transaction, so racing copies of a batch are kept once.
/// Returns the last number and whether anything was written.
pub(crate) async fn append_numbered(
    conn: &mut SqliteConnection,
    stream: Stream,
    id: TaskId,
    first_seq: i64,
    texts: &[String],
) -> StoreResult<(i64, bool)> {
    let last = sqlx::query_scalar::<_, i64>(stream.last())
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?
        .ok_or(StoreError::NotFound)?;
    if first_seq > last + 1 {
        return Err(StoreError::SequenceGap {
            last,
            first: first_seq,
        });
    }
    let skip = usize::try_from(last + 1 - first_seq)
        .unwrap_or(usize::MAX)
        .min(texts.len());
    let fresh = &texts[skip..];
    if fresh.is_empty() {
        return Ok((last, false));
    }
    Ok((append(conn, stream, id, fresh).await?, true))
}

/// Append texts (at least one: the store answers an empty batch from the readers) after the
/// task's last one, inside the batch's transaction: reserve `texts.len()` numbers on the
/// task's counter and insert the rows. Returns the new last number.
pub(crate) async fn append(
    conn: &mut SqliteConnection,
    stream: Stream,
    id: TaskId,
    texts: &[String],
) -> StoreResult<i64> {
    let n = i64::try_from(texts.len()).map_err(StoreError::backend)?;
    let end = sqlx::query_scalar::<_, i64>(stream.reserve())
        .bind(n)
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?
        .ok_or(StoreError::NotFound)?;
    let mut seq = end - n;
    let now = ts(Utc::now());
    for chunk in texts.chunks(CHUNK) {
        let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(stream.insert());
        b.push_values(chunk, |mut row, text| {
            seq += 1;
            row.push_bind(id.to_string())
                .push_bind(seq)
                .push_bind(text.as_str())
                .push_bind(now.clone());
        });
        b.build().execute(&mut *conn).await.map_err(db_err)?;
    }
    Ok(end)
}
