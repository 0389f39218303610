//! Reads of task rows: one task, pages with status, label and prompt-text filters, the queue
//! and the active set, the tasks finished since a time, history and the status counters.
//! Every read is retried on a lost connection (reads are always safe to repeat).
//!
//! Label filters are one bound parameter, the wanted pairs as a jsonb object, matched with
//! containment (`spec->'labels' @> $n`) on a GIN index: the statement is the same for one
//! filter or thousands. The prompt search folds ASCII letters only (`translate`, not
//! `lower`, whose result depends on the database's locale) and matches with `strpos`, a
//! plain substring test with no LIKE wildcards to escape.

use ao_core::Reason;
use ao_core::lifecycle::TaskStatus;
use ao_core::store::{FinishedTask, ListQuery, Page, StoreError, StoreResult};
use ao_core::task::{Task, TaskId, TransitionRecord};
use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{Postgres, QueryBuilder, Row};

use crate::PgStore;
use crate::error::db_err;
use crate::row::{self, task_columns};

const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";

/// A limit as PostgreSQL takes it.
fn limit_of(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl PgStore {
    pub(crate) async fn one(&self, id: TaskId) -> StoreResult<Option<Task>> {
        const SQL: &str = concat!("SELECT ", task_columns!(), " FROM tasks WHERE id = $1");
        let row = self
            .retrying("get", || async {
                sqlx::query(SQL)
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err)
            })
            .await?;
        row.as_ref().map(row::task).transpose()
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
        let limit = q.limit.max(1);
        let rows = self
            .retrying("list", || async {
                let mut b: QueryBuilder<Postgres> = QueryBuilder::new(concat!(
                    "SELECT ",
                    task_columns!(),
                    " FROM tasks WHERE true"
                ));
                if let Some(s) = q.status {
                    b.push(" AND status = ").push_bind(s.as_str());
                }
                if !labels.is_empty() {
                    b.push(" AND spec -> 'labels' @> ")
                        .push_bind(Json(&labels))
                        .push("::jsonb");
                }
                if let Some(text) = q.search.as_deref().filter(|t| !t.is_empty()) {
                    b.push(" AND strpos(translate(spec ->> 'prompt', ")
                        .push_bind(UPPER)
                        .push(", ")
                        .push_bind(LOWER)
                        .push("), ")
                        .push_bind(text.to_ascii_lowercase())
                        .push(") > 0");
                }
                if let Some(c) = cursor {
                    b.push(" AND seq < ").push_bind(c);
                }
                b.push(" ORDER BY seq DESC LIMIT ")
                    .push_bind(limit_of(limit).saturating_add(1));
                b.build().fetch_all(&self.pool).await.map_err(db_err)
            })
            .await?;
        let mut items = Vec::with_capacity(rows.len().min(limit));
        let mut last_seq = None;
        for r in rows.iter().take(limit) {
            items.push(row::task(r)?);
            last_seq = Some(row::seq(r)?);
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
        let rows = self
            .retrying("finished_since", || async {
                sqlx::query(
                    "SELECT id, status, started_at, finished_at, cost_usd FROM tasks \
                     WHERE finished_at >= $1 ORDER BY finished_at",
                )
                .bind(since)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)
            })
            .await?;
        rows.iter()
            .map(|r| {
                Ok(FinishedTask {
                    id: TaskId(r.try_get("id").map_err(db_err)?),
                    status: row::status(&r.try_get::<String, _>("status").map_err(db_err)?)?,
                    started_at: r.try_get("started_at").map_err(db_err)?,
                    finished_at: r.try_get("finished_at").map_err(db_err)?,
                    cost_usd: r.try_get("cost_usd").map_err(db_err)?,
                })
            })
            .collect()
    }

    pub(crate) async fn oldest_queued(&self, limit: usize) -> StoreResult<Vec<Task>> {
        const SQL: &str = concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE status = 'queued' ORDER BY seq ASC LIMIT $1"
        );
        let rows = self
            .retrying("queued", || async {
                sqlx::query(SQL)
                    .bind(limit_of(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err)
            })
            .await?;
        row::tasks(&rows)
    }

    pub(crate) async fn starting_or_running(&self) -> StoreResult<Vec<Task>> {
        const SQL: &str = concat!(
            "SELECT ",
            task_columns!(),
            " FROM tasks WHERE status IN ('starting', 'running') ORDER BY seq ASC"
        );
        let rows = self
            .retrying("active", || async {
                sqlx::query(SQL).fetch_all(&self.pool).await.map_err(db_err)
            })
            .await?;
        row::tasks(&rows)
    }

    pub(crate) async fn transitions(&self, id: TaskId) -> StoreResult<Vec<TransitionRecord>> {
        let rows = self
            .retrying("history", || async {
                sqlx::query(
                    "SELECT from_status, to_status, reason, at FROM task_transitions \
                     WHERE task_id = $1 ORDER BY id",
                )
                .bind(id.0)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)
            })
            .await?;
        rows.iter()
            .map(|r| {
                let from: Option<String> = r.try_get("from_status").map_err(db_err)?;
                Ok(TransitionRecord {
                    from: from.as_deref().map(row::status).transpose()?,
                    to: row::status(&r.try_get::<String, _>("to_status").map_err(db_err)?)?,
                    reason: Reason::parse(&r.try_get::<String, _>("reason").map_err(db_err)?),
                    at: r.try_get("at").map_err(db_err)?,
                })
            })
            .collect()
    }

    /// The status counters (one row per status, kept by every status change).
    pub(crate) async fn counts(&self) -> StoreResult<Vec<(TaskStatus, u64)>> {
        let rows = self
            .retrying("count_by_status", || async {
                sqlx::query("SELECT status, n FROM task_counts WHERE n > 0")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err)
            })
            .await?;
        rows.iter()
            .map(|r| {
                let s = row::status(&r.try_get::<String, _>("status").map_err(db_err)?)?;
                let n = r.try_get::<i64, _>("n").map_err(db_err)?;
                Ok((s, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }

    pub(crate) async fn token_hash(&self, id: TaskId) -> StoreResult<Option<String>> {
        self.retrying("worker_token_hash", || async {
            sqlx::query_scalar::<_, Option<String>>(
                "SELECT worker_token_hash FROM tasks WHERE id = $1",
            )
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map(Option::flatten)
            .map_err(db_err)
        })
        .await
    }

    pub(crate) async fn ping_once(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}
