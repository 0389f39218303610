//! The durable task store, as a trait. SQLite implements it today (`ao-store-sqlite`); a
//! PostgreSQL implementation can follow behind the same trait.
//!
//! Every status change goes through [`TaskStore::transition`], which checks the move with
//! [`crate::lifecycle::check_transition`] and applies it only if the task is still in the
//! status the caller saw (compare-and-set), so the API and the scheduler never race.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;
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

/// A status change to apply.
#[derive(Debug, Clone)]
pub struct Transition {
    pub to: TaskStatus,
    pub reason: Reason,
    pub message: Option<String>,
    pub at: DateTime<Utc>,
    pub worker: Option<WorkerRef>,
    pub exit_code: Option<i32>,
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
}

#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Task>,
    pub next_cursor: Option<String>,
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

/// A counter that bumps on every write, so followers (log and event streams) wake up
/// without polling the database in a loop.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    tx: watch::Sender<u64>,
}

impl Default for ChangeFeed {
    fn default() -> Self {
        ChangeFeed {
            tx: watch::channel(0).0,
        }
    }
}

impl ChangeFeed {
    pub fn bump(&self) {
        self.tx.send_modify(|v| *v = v.wrapping_add(1));
    }
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }
}

#[async_trait]
pub trait TaskStore: Send + Sync + 'static {
    /// Store a new task in `queued`, unless `max_queued` tasks already wait.
    async fn create(&self, task: NewTask, max_queued: usize) -> StoreResult<Created>;
    async fn get(&self, id: TaskId) -> StoreResult<Option<Task>>;
    async fn list(&self, query: &ListQuery) -> StoreResult<Page>;
    async fn history(&self, id: TaskId) -> StoreResult<Vec<TransitionRecord>>;
    /// Apply `t` if the task is in `from`; record it in the history.
    async fn transition(&self, id: TaskId, from: TaskStatus, t: Transition) -> StoreResult<Task>;
    /// Cancel a queued task at once, or flag an active one for the scheduler to stop.
    async fn request_cancel(&self, id: TaskId) -> StoreResult<Task>;
    /// The oldest queued tasks, first in first out.
    async fn queued(&self, limit: usize) -> StoreResult<Vec<Task>>;
    /// Tasks in `starting` or `running`.
    async fn active(&self) -> StoreResult<Vec<Task>>;
    async fn count_by_status(&self) -> StoreResult<Vec<(TaskStatus, u64)>>;
    /// Record the hash of the per-task worker token.
    async fn set_worker_token_hash(&self, id: TaskId, hash: &str) -> StoreResult<()>;
    async fn worker_token_hash(&self, id: TaskId) -> StoreResult<Option<String>>;
    async fn set_result(&self, id: TaskId, result: &TaskResult) -> StoreResult<()>;
    async fn append_logs(&self, id: TaskId, lines: &[String]) -> StoreResult<()>;
    /// Lines with `seq > after`, at most `limit`.
    async fn logs(&self, id: TaskId, after: i64, limit: usize) -> StoreResult<Vec<LogLine>>;
    /// The number of stored lines (the last `seq`).
    async fn log_count(&self, id: TaskId) -> StoreResult<i64>;
    /// Append events; returns the last sequence number.
    async fn append_events(&self, id: TaskId, events: &[serde_json::Value]) -> StoreResult<i64>;
    async fn events(&self, id: TaskId, after: i64, limit: usize) -> StoreResult<Vec<EventRecord>>;
    /// Cheap round trip, for readiness.
    async fn ping(&self) -> StoreResult<()>;
    /// Wakes on every write.
    fn changes(&self) -> watch::Receiver<u64>;
}
