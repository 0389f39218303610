//! Reads of task rows: one task, pages with status, label and prompt-text filters, the queue
//! and the active set, the tasks finished since a time, history and the status counters.
//!
//! Label filters are one bound parameter (a JSON object of the wanted pairs) read with
//! `json_each`, each pair looked up in the `(key, value)` index, and matched with
//! `GROUP BY .. HAVING COUNT(*) = n`, so the statement has the same shape for one filter or
//! thousands (a clause per filter once hit SQLite's expression depth limit at 932 filters).

use ao_core::Reason;
use ao_core::lifecycle::TaskStatus;
use ao_core::store::{FinishedTask, ListQuery, Page, StoreError, StoreResult};
use ao_core::task::{Task, TaskId, TransitionRecord};
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use crate::row::{self, task_columns};
use crate::{SqliteStore, db_err};

pub(crate) async fn fetch(conn: &mut SqliteConnection, id: TaskId) -> StoreResult<Option<Task>> {
    const SQL: &str = concat!("SELECT ", task_columns!(), " FROM tasks WHERE id = ?");
    let row = sqlx::query(SQL)
        .bind(id.to_string())
        .fetch_optional(conn)
        .await
        .map_err(db_err)?;
    row.as_ref().map(row::task).transpose()
}

impl SqliteStore {
    pub(crate) async fn one(&self, id: TaskId) -> StoreResult<Option<Task>> {
        let mut conn = self.reader.acquire().await.map_err(db_err)?;
        fetch(&mut conn, id).await
    }

    pub(crate) async fn page(&self, q: &ListQuery) -> StoreResult<Page> {
        let cursor: Option<i64> = match &q.cursor {
            Some(c) => Some(c.parse().map_err(|_| StoreError::InvalidCursor)?),
            None => None,
        };
        let Some(labels) = q.label_set() else {
            // Two values wanted for one key: nothing matches.
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        };
        let mut b: QueryBuilder<Sqlite> = QueryBuilder::new(concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE 1 = 1"
        ));
        if let Some(s) = q.status {
            b.push(" AND status = ").push_bind(s.as_str());
        }
        if !labels.is_empty() {
            let wanted = serde_json::to_string(&labels).map_err(StoreError::backend)?;
            // CROSS JOIN keeps the wanted pairs as the outer loop, so each is one lookup in
            // `task_labels_kv` (left to itself the planner scanned `task_labels`), and `+id`
            // keeps the outer query walking `seq` backwards until the page is full, instead of
            // fetching and sorting every match. On 100,000 tasks a label a third of them carry
            // went from about 120 ms to 12 ms a page, a rare one from 90 ms to 9 ms.
            b.push(" AND +id IN (SELECT l.task_id FROM json_each(")
                .push_bind(wanted)
                .push(
                    ") f CROSS JOIN task_labels l ON l.key = f.key AND l.value = f.value \
                     GROUP BY l.task_id HAVING COUNT(*) = ",
                )
                .push_bind(i64::try_from(labels.len()).unwrap_or(i64::MAX))
                .push(")");
        }
        if let Some(text) = q.search.as_deref().filter(|t| !t.is_empty()) {
            // `instr` on lower-cased text: a plain substring, with no LIKE wildcards to escape.
            b.push(" AND instr(lower(json_extract(spec, '$.prompt')), lower(")
                .push_bind(text.to_string())
                .push(")) > 0");
        }
        if let Some(c) = cursor {
            b.push(" AND seq < ").push_bind(c);
        }
        let limit = q.limit.max(1);
        b.push(" ORDER BY seq DESC LIMIT ")
            .push_bind(i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1));
        let rows = b.build().fetch_all(&self.reader).await.map_err(db_err)?;
        let mut items = Vec::with_capacity(rows.len());
        let mut last_seq = None;
        for r in rows.iter().take(limit) {
            items.push(row::task(r)?);
            last_seq = Some(r.try_get::<i64, _>("seq").map_err(db_err)?);
        }
        let next_cursor = (rows.len() > limit)
            .then(|| last_seq.map(|s| s.to_string()))
            .flatten();
        Ok(Page { items, next_cursor })
    }

    pub(crate) async fn finished_from(
        &self,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<FinishedTask>> {
        let rows = sqlx::query(
            "SELECT id, status, started_at, finished_at, json_extract(result, '$.cost_usd') AS cost \
             FROM tasks WHERE finished_at >= ? ORDER BY finished_at",
        )
        .bind(row::ts(since))
        .fetch_all(&self.reader)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let started: Option<String> = r.try_get("started_at").map_err(db_err)?;
                Ok(FinishedTask {
                    id: r
                        .try_get::<String, _>("id")
                        .map_err(db_err)?
                        .parse()
                        .map_err(StoreError::backend)?,
                    status: row::status(&r.try_get::<String, _>("status").map_err(db_err)?)?,
                    started_at: started.as_deref().map(row::parse_ts).transpose()?,
                    finished_at: row::parse_ts(
                        &r.try_get::<String, _>("finished_at").map_err(db_err)?,
                    )?,
                    cost_usd: r.try_get::<Option<f64>, _>("cost").map_err(db_err)?,
                })
            })
            .collect()
    }

    pub(crate) async fn oldest_queued(&self, limit: usize) -> StoreResult<Vec<Task>> {
        const SQL: &str = concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE status = 'queued' ORDER BY seq ASC LIMIT ?"
        );
        let rows = sqlx::query(SQL)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.reader)
            .await
            .map_err(db_err)?;
        rows.iter().map(row::task).collect()
    }

    pub(crate) async fn starting_or_running(&self) -> StoreResult<Vec<Task>> {
        const SQL: &str = concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE status IN ('starting', 'running') ORDER BY seq ASC"
        );
        let rows = sqlx::query(SQL)
            .fetch_all(&self.reader)
            .await
            .map_err(db_err)?;
        rows.iter().map(row::task).collect()
    }

    pub(crate) async fn transitions(&self, id: TaskId) -> StoreResult<Vec<TransitionRecord>> {
        let rows = sqlx::query("SELECT from_status, to_status, reason, at FROM task_transitions WHERE task_id = ? ORDER BY id")
            .bind(id.to_string())
            .fetch_all(&self.reader)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let from: Option<String> = r.try_get("from_status").map_err(db_err)?;
                Ok(TransitionRecord {
                    from: from.as_deref().map(row::status).transpose()?,
                    to: row::status(&r.try_get::<String, _>("to_status").map_err(db_err)?)?,
                    reason: Reason::parse(&r.try_get::<String, _>("reason").map_err(db_err)?),
                    at: row::parse_ts(&r.try_get::<String, _>("at").map_err(db_err)?)?,
                })
            })
            .collect()
    }

    /// The status counters (one row per status, kept by every status change).
    pub(crate) async fn counts(&self) -> StoreResult<Vec<(TaskStatus, u64)>> {
        let rows = sqlx::query("SELECT status, n FROM task_counts WHERE n > 0")
            .fetch_all(&self.reader)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let s = row::status(&r.try_get::<String, _>("status").map_err(db_err)?)?;
                let n = r.try_get::<i64, _>("n").map_err(db_err)?;
                Ok((s, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }

    pub(crate) async fn token_hash(&self, id: TaskId) -> StoreResult<Option<String>> {
        sqlx::query_scalar::<_, Option<String>>("SELECT worker_token_hash FROM tasks WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await
            .map(Option::flatten)
            .map_err(db_err)
    }
}
