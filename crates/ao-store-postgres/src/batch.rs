//! One admission batch (see `admit`) applied in one transaction: the creates are decided in
//! arrival order exactly as if they had run one after another, and written with one statement
//! per table, one counter update and one notification statement, then one commit.
//!
//! The transaction first locks the `queued` counter row (`FOR UPDATE`). Every batch of every
//! replica takes that lock before it writes and holds it to its commit, so batches on one
//! database are applied one after another; and since a batch looks up its idempotency keys
//! *after* taking the lock, under READ COMMITTED it sees every key that an earlier batch, on
//! any replica, committed. The decision ([`plan`]) is then a pure function of the counter's
//! value, the keys found and the batch. The insert still says `ON CONFLICT DO NOTHING`: a
//! writer outside this protocol (an older replica during a rolling upgrade) could commit a key
//! in between; then the batch is rolled back and planned again, so such a race still answers
//! `Existing`/`IdempotencyConflict`, never an error.
//!
//! A scheduler transition that moves a task out of `queued` updates the same counter row, so it
//! waits for at most the batch that holds it (a few milliseconds), not for the admission
//! backlog: row-lock waiters are served in turn, and one replica has one batch in flight.

use std::collections::HashMap;

use ao_core::Reason;
use ao_core::lifecycle::TaskStatus;
use ao_core::retry::RetryPolicy;
use ao_core::store::{Created, StoreError, StoreResult};
use ao_core::task::{NewTask, Task, TaskId};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::{PgError, commit_err, db_err, retrying};
use crate::notify::{CHANNEL, Change, payloads};
use crate::row::{self, task_columns};

/// How many times a batch is planned again after losing an idempotency-key race (each loss
/// means another writer committed that key first).
const KEY_RACE_TRIES: usize = 3;

/// One create waiting in a batch: the task, its spec already serialized (by the caller, so
/// the admission task does not spend its time on it), and the caller's queue bound.
#[derive(Debug)]
pub(crate) struct Pending {
    pub new: NewTask,
    pub spec: String,
    pub max_queued: usize,
}

/// What a batch decided for one of its creates.
#[derive(Debug, Clone, PartialEq)]
enum Plan {
    /// Insert it: it fits under its bound.
    Insert,
    /// Its key belongs to a task committed earlier.
    Repeat(Box<Task>),
    /// Its key is that of the earlier create at this index of the batch, which is inserted.
    SameAs(usize),
    /// The queue is full under this bound.
    Full(usize),
}

/// Decide each create in arrival order, as one after another on a queue that holds `queued`
/// tasks: a known key is answered before the bound (as the `TaskStore::create` contract says),
/// a key seen earlier in the batch is answered with that create's task, and the rest are
/// admitted while they fit.
fn plan(batch: &[Pending], earlier: &HashMap<String, Task>, mut queued: i64) -> Vec<Plan> {
    let mut admitted_keys: HashMap<&str, usize> = HashMap::new();
    let mut plans = Vec::with_capacity(batch.len());
    for (i, p) in batch.iter().enumerate() {
        let key = p.new.idempotency_key.as_deref();
        if let Some(k) = key {
            if let Some(t) = earlier.get(k) {
                plans.push(Plan::Repeat(Box::new(t.clone())));
                continue;
            }
            if let Some(&j) = admitted_keys.get(k) {
                plans.push(Plan::SameAs(j));
                continue;
            }
        }
        if queued < i64::try_from(p.max_queued).unwrap_or(i64::MAX) {
            queued += 1;
            if let Some(k) = key {
                admitted_keys.insert(k, i);
            }
            plans.push(Plan::Insert);
        } else {
            plans.push(Plan::Full(p.max_queued));
        }
    }
    plans
}

/// What a committed batch answers: one result per create, in batch order, and the tasks it
/// created (for the local change feed).
#[derive(Debug)]
pub(crate) struct Applied {
    pub results: Vec<StoreResult<Created>>,
    pub created: Vec<TaskId>,
}

fn resolve(batch: &[Pending], plans: Vec<Plan>, inserted: &HashMap<Uuid, Task>) -> Applied {
    let mut created = Vec::new();
    let results = batch
        .iter()
        .zip(plans)
        .map(|(p, plan)| match plan {
            Plan::Insert => {
                created.push(p.new.id);
                Ok(Created::New(inserted[&p.new.id.0].clone()))
            }
            Plan::Repeat(t) => Created::repeat_of(*t, &p.new),
            Plan::SameAs(j) => Created::repeat_of(inserted[&batch[j].new.id.0].clone(), &p.new),
            Plan::Full(limit) => Err(StoreError::QueueFull { limit }),
        })
        .collect();
    Applied { results, created }
}

async fn by_keys(conn: &mut PgConnection, keys: &[&str]) -> StoreResult<HashMap<String, Task>> {
    const SQL: &str = concat!(
        "SELECT ",
        task_columns!(),
        " FROM tasks WHERE idempotency_key = ANY($1)"
    );
    let rows = sqlx::query(SQL)
        .bind(keys)
        .fetch_all(conn)
        .await
        .map_err(db_err)?;
    let mut found = HashMap::with_capacity(rows.len());
    for task in row::tasks(&rows)? {
        if let Some(key) = task.idempotency_key.clone() {
            found.insert(key, task);
        }
    }
    Ok(found)
}

/// Insert the rows of `rows` (one statement); returns the tasks inserted, by id. A row whose
/// key another writer committed meanwhile is skipped (not returned).
async fn insert(conn: &mut PgConnection, rows: &[&Pending]) -> StoreResult<HashMap<Uuid, Task>> {
    const SQL: &str = concat!(
        "INSERT INTO tasks (id, status, reason, spec, created_at, idempotency_key, request_hash) \
         SELECT id, $6, $7, spec::jsonb, created_at, key, hash \
         FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::text[]) \
           AS t(id, spec, created_at, key, hash) \
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING ",
        task_columns!()
    );
    let ids: Vec<Uuid> = rows.iter().map(|p| p.new.id.0).collect();
    let specs: Vec<&str> = rows.iter().map(|p| p.spec.as_str()).collect();
    let times: Vec<DateTime<Utc>> = rows.iter().map(|p| p.new.created_at).collect();
    let keys: Vec<Option<&str>> = rows
        .iter()
        .map(|p| p.new.idempotency_key.as_deref())
        .collect();
    let hashes: Vec<&str> = rows.iter().map(|p| p.new.request_hash.as_str()).collect();
    let inserted = sqlx::query(SQL)
        .bind(ids)
        .bind(specs)
        .bind(times)
        .bind(keys)
        .bind(hashes)
        .bind(TaskStatus::Queued.as_str())
        .bind(Reason::Submitted.as_string())
        .fetch_all(conn)
        .await
        .map_err(db_err)?;
    let tasks = row::tasks(&inserted)?;
    Ok(tasks.into_iter().map(|t| (t.id.0, t)).collect())
}

/// The history rows, the queue slots and the notifications of the created tasks: one
/// statement (data-modifying `WITH` parts always run to completion).
async fn record(conn: &mut PgConnection, origin: &str, created: &[&Task]) -> StoreResult<()> {
    const SQL: &str = "WITH history AS ( \
           INSERT INTO task_transitions (task_id, from_status, to_status, reason, at) \
           SELECT id, NULL, $3, $4, at FROM UNNEST($1::uuid[], $2::timestamptz[]) AS t(id, at) \
         ), slots AS ( \
           UPDATE task_counts SET n = n + $5 WHERE status = $3 \
         ) \
         SELECT pg_notify($6, p) FROM UNNEST($7::text[]) AS p";
    let ids: Vec<TaskId> = created.iter().map(|t| t.id).collect();
    sqlx::query(SQL)
        .bind(ids.iter().map(|id| id.0).collect::<Vec<Uuid>>())
        .bind(created.iter().map(|t| t.created_at).collect::<Vec<_>>())
        .bind(TaskStatus::Queued.as_str())
        .bind(Reason::Submitted.as_string())
        .bind(i64::try_from(ids.len()).unwrap_or(i64::MAX))
        .bind(CHANNEL)
        .bind(payloads(origin, Change::Task, &ids))
        .execute(conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// One try at the batch; `None` when an insert lost an idempotency-key race (nothing was
/// committed; plan again).
async fn attempt(pool: &PgPool, origin: &str, batch: &[Pending]) -> StoreResult<Option<Applied>> {
    let mut tx = pool.begin().await.map_err(db_err)?;
    let queued: i64 = sqlx::query_scalar("SELECT n FROM task_counts WHERE status = $1 FOR UPDATE")
        .bind(TaskStatus::Queued.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
    let keys: Vec<&str> = batch
        .iter()
        .filter_map(|p| p.new.idempotency_key.as_deref())
        .collect();
    let earlier = if keys.is_empty() {
        HashMap::new()
    } else {
        by_keys(&mut tx, &keys).await?
    };
    let plans = plan(batch, &earlier, queued);
    let rows: Vec<&Pending> = batch
        .iter()
        .zip(&plans)
        .filter(|(_, plan)| **plan == Plan::Insert)
        .map(|(p, _)| p)
        .collect();
    if rows.is_empty() {
        // Nothing to write: the transaction only held the lock while we looked.
        return Ok(Some(resolve(batch, plans, &HashMap::new())));
    }
    let inserted = insert(&mut tx, &rows).await?;
    if inserted.len() < rows.len() {
        return Ok(None);
    }
    let created: Vec<&Task> = rows.iter().map(|p| &inserted[&p.new.id.0]).collect();
    record(&mut tx, origin, &created).await?;
    tx.commit().await.map_err(commit_err)?;
    Ok(Some(resolve(batch, plans, &inserted)))
}

/// Apply `batch` in one transaction, retrying a lost connection (nothing was committed) and a
/// lost idempotency-key race (see the module docs).
pub(crate) async fn apply(
    pool: &PgPool,
    origin: &str,
    retry: &RetryPolicy,
    batch: &[Pending],
) -> StoreResult<Applied> {
    for _ in 0..KEY_RACE_TRIES {
        if let Some(applied) = retrying(retry, "create", || attempt(pool, origin, batch)).await? {
            return Ok(applied);
        }
    }
    Err(StoreError::backend(PgError::KeyRaces(KEY_RACE_TRIES)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ao_core::store::conformance::new_task;

    fn pending(prompt: &str, key: Option<&str>, max_queued: usize) -> Pending {
        Pending {
            new: new_task(prompt, &[], key),
            spec: String::new(),
            max_queued,
        }
    }

    /// The task a create would have stored.
    fn stored(p: &Pending) -> Task {
        Task {
            id: p.new.id,
            status: TaskStatus::Queued,
            reason: Reason::Submitted,
            message: None,
            spec: p.new.spec.clone(),
            created_at: p.new.created_at,
            started_at: None,
            finished_at: None,
            worker: None,
            exit_code: None,
            cancel_requested: false,
            result: None,
            idempotency_key: p.new.idempotency_key.clone(),
            request_hash: p.new.request_hash.clone(),
        }
    }

    #[test]
    fn creates_are_decided_in_arrival_order_as_one_after_another() {
        let old = stored(&pending("known", Some("old"), 3));
        let earlier = HashMap::from([("old".to_string(), old.clone())]);
        let batch = [
            pending("a", None, 3),
            pending("b", Some("k"), 3),
            pending("b", Some("k"), 3),
            pending("known", Some("old"), 3),
            pending("d", None, 3),
            pending("e", None, 10),
            pending("f", Some("late"), 3),
            pending("f", Some("late"), 3),
        ];
        let plans = plan(&batch, &earlier, 1);
        let want = [
            Plan::Insert,
            Plan::Insert,
            Plan::SameAs(1),
            // A known key is answered before the bound (the queue is full by now).
            Plan::Repeat(Box::new(old)),
            Plan::Full(3),
            Plan::Insert,
            // A refused key is not remembered: its repeat is decided afresh, and refused.
            Plan::Full(3),
            Plan::Full(3),
        ];
        assert_eq!(plans, want);
    }

    #[test]
    fn repeats_in_a_batch_get_the_first_task_or_a_conflict() {
        let batch = [
            pending("same", Some("k"), 10),
            pending("same", Some("k"), 10),
            pending("other", Some("k"), 10),
        ];
        let plans = plan(&batch, &HashMap::new(), 0);
        let inserted = HashMap::from([(batch[0].new.id.0, stored(&batch[0]))]);
        let applied = resolve(&batch, plans, &inserted);
        assert_eq!(applied.created, vec![batch[0].new.id]);
        let mut results = applied.results.into_iter();
        assert!(matches!(results.next(), Some(Ok(Created::New(t))) if t.id == batch[0].new.id));
        assert!(
            matches!(results.next(), Some(Ok(Created::Existing(t))) if t.id == batch[0].new.id)
        );
        assert!(matches!(
            results.next(),
            Some(Err(StoreError::IdempotencyConflict))
        ));
    }
}
