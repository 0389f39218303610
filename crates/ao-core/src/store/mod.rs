//! The durable task store, as a trait. SQLite implements it today (`ao-store-sqlite`); a
//! PostgreSQL implementation can follow behind the same trait and proves itself with the
//! conformance suite `ao_core::store::conformance` (cargo feature `conformance`).
//!
//! # The contract a backend keeps
//!
//! Callers (the API handlers, the scheduler, the runtimes' output pipelines) run concurrently
//! and may run in several processes against one database. Correctness must not rest on a
//! backend happening to have a single writer, so every write below is atomic on its own:
//!
//! - **Status compare-and-set.** [`TaskStore::transition`] checks the move with
//!   [`crate::lifecycle::check_transition`] and applies it in one conditional write
//!   (`UPDATE .. WHERE id = ? AND status = ? RETURNING ..`) together with its history row. Of
//!   any number of racing callers that saw the same status, exactly one wins; the others get
//!   [`StoreError::StatusChanged`] with the status they lost to.
//! - **Queue bound.** [`TaskStore::create`] admits a task only if fewer than `max_queued`
//!   tasks are `queued`, checked and reserved in the same transaction as the insert, so
//!   concurrent submissions never exceed the bound. The queue depth is a counter kept in that
//!   same transaction by every status change into or out of `queued` (O(1), never a count of
//!   rows); [`TaskStore::count_by_status`] reads those counters.
//! - **Idempotency.** Two creates with the same idempotency key yield one task, whatever their
//!   timing: the second gets [`Created::Existing`] (same body) or
//!   [`StoreError::IdempotencyConflict`] (different body).
//! - **Sequence numbers.** Log lines and events of a task are numbered 1, 2, 3, .. with no gap
//!   and no duplicate under concurrent appends: a batch reserves its range atomically (a
//!   per-task counter bumped with `RETURNING` in the batch's transaction).
//! - **Change feed.** After a write concerning a task is committed, the task's
//!   [`Subscription`]s fire; subscriptions to other tasks do not.
//!
//! Queries take typed arguments ([`ListQuery`], [`Transition`]); no SQL crosses this trait.

mod feed;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use feed::{ChangeFeed, ListSubscription, Subscription};

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::lifecycle::{Reason, TaskStatus, TransitionError};
use crate::task::{NewTask, Task, TaskId, TaskResult, TransitionRecord, WorkerRef};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("task not found")]
    NotFound,
    #[error("the queue is full ({limit} tasks queued)")]
    QueueFull { limit: usize },
    #[error("the idempotency key was already used for a different request")]
    IdempotencyConflict,
    #[error("task is already {0}")]
    AlreadyFinished(TaskStatus),
    /// The task was not in the expected status (someone else moved it first).
    #[error("task is {actual}, expected {expected}")]
    StatusChanged {
        expected: TaskStatus,
        actual: TaskStatus,
    },
    #[error(transparent)]
    IllegalTransition(#[from] TransitionError),
    #[error("invalid cursor")]
    InvalidCursor,
    /// A numbered append would leave a hole: the store holds up to `last`.
    #[error("events must be contiguous: the store has up to {last}, the batch starts at {first}")]
    SequenceGap { last: i64, first: i64 },
    /// A fenced write from a scheduler whose lease generation is no longer the current one
    /// (another replica leads now); nothing was changed.
    #[error("this replica no longer leads: its lease generation {fence} is not the current one")]
    Fenced { fence: crate::lease::Fence },
    #[error("store backend error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The result of a create call.
#[derive(Debug)]
pub enum Created {
    New(Task),
    /// The idempotency key matched an earlier request with the same body.
    Existing(Task),
}

impl Created {
    /// The answer to a create whose idempotency key matched `earlier`: that task when the
    /// request is the same, [`StoreError::IdempotencyConflict`] when its body differs. Every
    /// backend answers a repeated key with this.
    pub fn repeat_of(earlier: Task, new: &NewTask) -> StoreResult<Created> {
        if earlier.request_hash == new.request_hash {
            Ok(Created::Existing(earlier))
        } else {
            Err(StoreError::IdempotencyConflict)
        }
    }
}

/// A status change to apply.
#[derive(Debug, Clone)]
pub struct Transition {
    pub to: TaskStatus,
    pub reason: Reason,
    pub message: Option<String>,
    pub at: DateTime<Utc>,
    pub worker: Option<WorkerRef>,
    pub exit_code: Option<i32>,
    /// Set by a scheduler that runs under a lease ([`crate::lease`]): the store applies the
    /// change only while this is the scheduler lease's current generation, checked in the
    /// same statement as the compare-and-set, and answers [`StoreError::Fenced`] otherwise.
    /// A backend without leases refuses fenced changes the same way.
    pub fence: Option<crate::lease::Fence>,
    /// Stored with the move, in the same statement: the hash of the worker token the claim
    /// hands out. Written by a fenced claim, so a deposed leader can never replace the token
    /// of the worker the current leader launched.
    pub worker_token_hash: Option<String>,
    /// Stored with the move, in the same statement (a result the scheduler writes, such as
    /// a stopped task's outcome), so it lands only if the move does.
    pub result: Option<TaskResult>,
}

impl Transition {
    pub fn new(to: TaskStatus, reason: Reason) -> Self {
        Transition {
            to,
            reason,
            message: None,
            at: Utc::now(),
            worker: None,
            exit_code: None,
            fence: None,
            worker_token_hash: None,
            result: None,
        }
    }
    pub fn message(mut self, m: impl Into<String>) -> Self {
        self.message = Some(m.into());
        self
    }
    pub fn worker(mut self, w: WorkerRef) -> Self {
        self.worker = Some(w);
        self
    }
    pub fn fence(mut self, f: Option<crate::lease::Fence>) -> Self {
        self.fence = f;
        self
    }
    pub fn exit_code(mut self, c: Option<i32>) -> Self {
        self.exit_code = c;
        self
    }
}

/// Filters for listing tasks, newest first.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub status: Option<TaskStatus>,
    /// Every pair must match.
    pub labels: Vec<(String, String)>,
    pub limit: usize,
    /// Opaque cursor from a previous page.
    pub cursor: Option<String>,
    /// Only tasks whose prompt contains this text (case-insensitive for ASCII letters).
    pub search: Option<String>,
}

impl ListQuery {
    /// The label filters as a set of distinct `key -> value` pairs, which is what a backend
    /// matches against. `None` when two filters want different values for one key: no task
    /// can match, so the backend answers an empty page without a query.
    pub fn label_set(&self) -> Option<BTreeMap<&str, &str>> {
        let mut set = BTreeMap::new();
        for (k, v) in &self.labels {
            if let Some(prev) = set.insert(k.as_str(), v.as_str())
                && prev != v.as_str()
            {
                return None;
            }
        }
        Some(set)
    }
}

#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Task>,
    pub next_cursor: Option<String>,
}

/// A task that reached a terminal status: what usage reports are made of
/// ([`TaskStore::finished_since`], aggregated by [`crate::usage`]).
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedTask {
    pub id: TaskId,
    pub status: TaskStatus,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    /// The agent's reported cost, when it reported one.
    pub cost_usd: Option<f64>,
}

/// One line of worker output.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LogLine {
    /// 1-based line number within the task's output.
    pub seq: i64,
    pub line: String,
    pub at: DateTime<Utc>,
}

/// One stored agent event (a stream-json object from the worker).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EventRecord {
    /// 1-based sequence number within the task's events.
    pub seq: i64,
    pub event: serde_json::Value,
    pub at: DateTime<Utc>,
}

#[async_trait]
pub trait TaskStore: Send + Sync + 'static {
    /// Store a new task in `queued`, unless `max_queued` tasks already wait
    /// ([`StoreError::QueueFull`]). The bound is checked and the slot taken atomically with
    /// the insert. A known idempotency key returns the earlier task instead (checked before
    /// the bound: a repeated submission succeeds even when the queue is full).
    async fn create(&self, task: NewTask, max_queued: usize) -> StoreResult<Created>;
    async fn get(&self, id: TaskId) -> StoreResult<Option<Task>>;
    /// A page of tasks, newest first. Any number of label filters is accepted; the query's
    /// size does not grow with them.
    async fn list(&self, query: &ListQuery) -> StoreResult<Page>;
    async fn history(&self, id: TaskId) -> StoreResult<Vec<TransitionRecord>>;
    /// Apply `t` if the task is still in `from` (one atomic compare-and-set) and record it in
    /// the history and the status counters, all in one transaction. Errors:
    /// [`StoreError::IllegalTransition`] for a move the lifecycle forbids,
    /// [`StoreError::StatusChanged`] if the task is no longer in `from`,
    /// [`StoreError::NotFound`].
    async fn transition(&self, id: TaskId, from: TaskStatus, t: Transition) -> StoreResult<Task>;
    /// Cancel a queued task at once, or flag an active one for the scheduler to stop. Racing
    /// the scheduler's claim, the task ends up either `cancelled` or active and flagged.
    async fn request_cancel(&self, id: TaskId) -> StoreResult<Task>;
    /// The oldest queued tasks, first in first out.
    async fn queued(&self, limit: usize) -> StoreResult<Vec<Task>>;
    /// Tasks in `starting` or `running`.
    async fn active(&self) -> StoreResult<Vec<Task>>;
    /// Tasks that reached a terminal status at or after `since`, oldest first. Backends
    /// index the finish time, so the cost follows the number of tasks returned, not the
    /// number stored.
    async fn finished_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<FinishedTask>>;
    /// Tasks per status, from counters kept with every status change (not a scan). Statuses
    /// with no task may be missing or zero.
    async fn count_by_status(&self) -> StoreResult<Vec<(TaskStatus, u64)>>;
    /// Record the hash of the per-task worker token.
    async fn set_worker_token_hash(&self, id: TaskId, hash: &str) -> StoreResult<()>;
    async fn worker_token_hash(&self, id: TaskId) -> StoreResult<Option<String>>;
    async fn set_result(&self, id: TaskId, result: &TaskResult) -> StoreResult<()>;
    /// Append lines after the task's last one; concurrent appends get disjoint, contiguous
    /// ranges. [`StoreError::NotFound`] for an unknown task (an empty batch is a no-op).
    async fn append_logs(&self, id: TaskId, lines: &[String]) -> StoreResult<()>;
    /// Lines with `seq > after`, at most `limit`.
    async fn logs(&self, id: TaskId, after: i64, limit: usize) -> StoreResult<Vec<LogLine>>;
    /// The number of stored lines (the last `seq`); 0 for an unknown task.
    async fn log_count(&self, id: TaskId) -> StoreResult<i64>;
    /// Append events as [`TaskStore::append_logs`] does lines; returns the last sequence
    /// number (with an empty batch: the current one, 0 for an unknown task).
    async fn append_events(&self, id: TaskId, events: &[serde_json::Value]) -> StoreResult<i64>;
    /// Append a batch whose first event is number `first_seq`, atomically: the events the
    /// store already holds (numbers up to its last) are skipped, so a batch resent while the
    /// first copy is still being stored is kept once. Returns the last sequence number.
    /// [`StoreError::SequenceGap`] when `first_seq` is past the last number plus one.
    async fn append_events_at(
        &self,
        id: TaskId,
        first_seq: i64,
        events: &[serde_json::Value],
    ) -> StoreResult<i64>;
    async fn events(&self, id: TaskId, after: i64, limit: usize) -> StoreResult<Vec<EventRecord>>;
    /// Cheap round trip, for readiness.
    async fn ping(&self) -> StoreResult<()>;
    /// Follow one task: the subscription fires after each committed write concerning it
    /// (status, cancel flag, result, log lines, events) and never for other tasks. It carries
    /// no data; the follower re-reads the store.
    fn subscribe(&self, id: TaskId) -> Subscription;
    /// Follow the task list: the subscription fires after each committed write that creates
    /// a task or changes one (status, cancel flag, result), not for output.
    fn subscribe_list(&self) -> ListSubscription;
}

#[cfg(test)]
mod tests {
    use super::ListQuery;

    fn query(labels: &[(&str, &str)]) -> ListQuery {
        ListQuery {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..ListQuery::default()
        }
    }

    #[test]
    fn label_set_merges_repeats_and_detects_contradictions() {
        let q = query(&[("team", "a"), ("env", "prod"), ("team", "a")]);
        let set = q.label_set().unwrap();
        assert_eq!(
            set.into_iter().collect::<Vec<_>>(),
            [("env", "prod"), ("team", "a")]
        );
        assert!(query(&[("team", "a"), ("team", "b")]).label_set().is_none());
        assert!(query(&[]).label_set().unwrap().is_empty());
    }
}
