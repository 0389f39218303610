//! Append-only per-task sequences: worker output lines and agent events, numbered 1, 2, 3..
//! per task. An append reserves its range by bumping the task's counter (`log_seq` or
//! `event_seq`) with `RETURNING` in its own transaction; the task row stays locked until
//! the commit, so concurrent appends get disjoint, contiguous ranges in commit order, and
//! the `(task_id, seq)` primary key backs that up. A batch is one `INSERT .. SELECT FROM
//! unnest(..) WITH ORDINALITY`, whatever its size.

use ao_core::store::{StoreError, StoreResult};
use ao_core::task::TaskId;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use tracing::instrument;

use crate::PgStore;
use crate::error::{commit_err, db_err};
use crate::notify::Change;

/// Which sequence; each variant names its static statements.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    Logs,
    Events,
}

impl Stream {
    fn reserve(self) -> &'static str {
        match self {
            Stream::Logs => {
                "UPDATE tasks SET log_seq = log_seq + $1 WHERE id = $2 RETURNING log_seq"
            }
            Stream::Events => {
                "UPDATE tasks SET event_seq = event_seq + $1 WHERE id = $2 RETURNING event_seq"
            }
        }
    }

    fn last(self) -> &'static str {
        match self {
            Stream::Logs => "SELECT log_seq FROM tasks WHERE id = $1",
            Stream::Events => "SELECT event_seq FROM tasks WHERE id = $1",
        }
    }

    /// The last number, with the task row locked until the transaction ends.
    fn last_locked(self) -> &'static str {
        match self {
            Stream::Logs => "SELECT log_seq FROM tasks WHERE id = $1 FOR UPDATE",
            Stream::Events => "SELECT event_seq FROM tasks WHERE id = $1 FOR UPDATE",
        }
    }

    /// `$1` task, `$2` the number before the first, `$3` the texts, `$4` the time.
    fn insert(self) -> &'static str {
        match self {
            Stream::Logs => {
                "INSERT INTO task_logs (task_id, seq, line, at) \
                 SELECT $1, $2 + n, t, $4 FROM unnest($3::bytea[]) WITH ORDINALITY AS u(t, n)"
            }
            Stream::Events => {
                "INSERT INTO task_events (task_id, seq, event, at) \
                 SELECT $1, $2 + n, t, $4 FROM unnest($3::text[]) WITH ORDINALITY AS u(t, n)"
            }
        }
    }

    fn read(self) -> &'static str {
        match self {
            Stream::Logs => {
                "SELECT seq, line AS text, at FROM task_logs \
                 WHERE task_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
            }
            Stream::Events => {
                "SELECT seq, event AS text, at FROM task_events \
                 WHERE task_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
            }
        }
    }
}

impl PgStore {
    /// The last sequence number; 0 for an unknown task.
    pub(crate) async fn last_seq(&self, stream: Stream, id: TaskId) -> StoreResult<i64> {
        let last = self
            .retrying("last_seq", || async {
                sqlx::query_scalar::<_, i64>(stream.last())
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err)
            })
            .await?;
        Ok(last.unwrap_or(0))
    }

    /// Append texts after the current last sequence number; returns the new last one.
    #[instrument(skip_all, fields(task_id = %id, n = texts.len()))]
    pub(crate) async fn append(
        &self,
        stream: Stream,
        id: TaskId,
        texts: &[String],
    ) -> StoreResult<i64> {
        if texts.is_empty() {
            return self.last_seq(stream, id).await;
        }
        self.retrying("append", || async {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let end = append_in(&mut tx, stream, id, texts).await?;
            self.announce(&mut tx, Change::Output, id).await?;
            tx.commit().await.map_err(commit_err)?;
            self.woke(Change::Output, id);
            Ok(end)
        })
        .await
    }

    /// Append a batch numbered from `first_seq`, skipping what is already stored; the check
    /// and the append share one transaction holding the task row, so racing copies of a
    /// batch are kept once.
    #[instrument(skip_all, fields(task_id = %id, first_seq, n = texts.len()))]
    pub(crate) async fn append_numbered(
        &self,
        stream: Stream,
        id: TaskId,
        first_seq: i64,
        texts: &[String],
    ) -> StoreResult<i64> {
        self.retrying("append_numbered", || async {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let last = sqlx::query_scalar::<_, i64>(stream.last_locked())
                .bind(id.0)
                .fetch_optional(&mut *tx)
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
                return Ok(last);
            }
            let end = append_in(&mut tx, stream, id, fresh).await?;
            self.announce(&mut tx, Change::Output, id).await?;
            tx.commit().await.map_err(commit_err)?;
            self.woke(Change::Output, id);
            Ok(end)
        })
        .await
    }

    pub(crate) async fn read(
        &self,
        stream: Stream,
        id: TaskId,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<(i64, String, DateTime<Utc>)>> {
        let rows = self
            .retrying("read_output", || async {
                sqlx::query(stream.read())
                    .bind(id.0)
                    .bind(after)
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err)
            })
            .await?;
        rows.iter()
            .map(|r| {
                let text = match stream {
                    Stream::Logs => String::from_utf8(r.try_get("text").map_err(db_err)?)
                        .map_err(StoreError::backend)?,
                    Stream::Events => r.try_get("text").map_err(db_err)?,
                };
                Ok((
                    r.try_get("seq").map_err(db_err)?,
                    text,
                    r.try_get("at").map_err(db_err)?,
                ))
            })
            .collect()
    }
}

/// Reserve `texts.len()` numbers on the task's counter and insert the rows, inside `conn`'s
/// open transaction. Returns the last number.
async fn append_in(
    conn: &mut PgConnection,
    stream: Stream,
    id: TaskId,
    texts: &[String],
) -> StoreResult<i64> {
    let n = i64::try_from(texts.len()).map_err(StoreError::backend)?;
    let end = sqlx::query_scalar::<_, i64>(stream.reserve())
        .bind(n)
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?
        .ok_or(StoreError::NotFound)?;
    let insert = sqlx::query(stream.insert()).bind(id.0).bind(end - n);
    // Lines go as bytes (see the migration), events as text.
    let insert = match stream {
        Stream::Logs => insert.bind(texts.iter().map(|t| t.as_bytes()).collect::<Vec<_>>()),
        Stream::Events => insert.bind(texts),
    };
    insert
        .bind(Utc::now())
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(end)
}
