//! The task resource: what a client asked for ([`TaskSpec`]), and what became of it ([`Task`]).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::lifecycle::{Reason, TaskStatus};
use crate::worker::Outcome;

/// A task identifier: a UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub Uuid);

impl TaskId {
    pub fn new() -> Self {
        TaskId(Uuid::now_v7())
    }
}

impl Default for TaskId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for TaskId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(TaskId)
    }
}

impl utoipa::PartialSchema for TaskId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Uuid,
            )))
            .into()
    }
}
impl ToSchema for TaskId {}

/// A git repository for the agent to work in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Repository {
    /// Clone URL (https, ssh, or a local path for testing). Must not embed credentials.
    pub url: String,
    /// Branch, tag or commit to start from. Defaults to the remote's default branch.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
}

/// What the client asked for, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskSpec {
    /// The instruction for the agent.
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<Repository>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_turns: Option<u32>,
    /// Wall-clock limit for the run, enforced by the orchestrator.
    pub timeout_seconds: u64,
    /// Spending limit for the agent run, in US dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_budget_usd: Option<f64>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Non-secret environment variables for the worker.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// A task to be stored: the spec plus how it was submitted.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub id: TaskId,
    pub spec: TaskSpec,
    /// Client-chosen key that makes a repeated submission return the same task.
    pub idempotency_key: Option<String>,
    /// Hash of the request, to refuse a reused key with a different body.
    pub request_hash: String,
    pub created_at: DateTime<Utc>,
}

/// The identity of the worker that runs (or ran) a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkerRef {
    /// `local` or `kubernetes`.
    pub runtime: String,
    /// Process id for local workers, pod name for Kubernetes.
    pub name: String,
}

/// The deliverable of an agent run, as verified by the orchestrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskResult {
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_sha: Option<String>,
    /// Why no pull request was opened for a pushed branch (outcome `pushed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr_skipped_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_turns: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TaskResult {
    /// A result with this outcome and nothing else yet.
    pub fn new(outcome: Outcome) -> Self {
        TaskResult {
            outcome,
            summary: None,
            pr_url: None,
            branch: None,
            commit_sha: None,
            pr_skipped_reason: None,
            cost_usd: None,
            input_tokens: None,
            output_tokens: None,
            num_turns: None,
            session_id: None,
            error: None,
        }
    }
}

/// One recorded status change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TransitionRecord {
    pub from: Option<TaskStatus>,
    pub to: TaskStatus,
    pub reason: Reason,
    pub at: DateTime<Utc>,
}

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Task {
    pub id: TaskId,
    pub status: TaskStatus,
    /// Why the task has its current status.
    pub reason: Reason,
    /// A human-readable detail for the reason, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(flatten)]
    pub spec: TaskSpec,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// True once a cancel was requested for a task whose worker is still stopping.
    #[serde(default)]
    pub cancel_requested: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<TaskResult>,
    #[serde(skip)]
    pub idempotency_key: Option<String>,
    #[serde(skip)]
    pub request_hash: String,
}

impl Task {
    /// When the task must be finished, if it has started.
    pub fn deadline(&self) -> Option<DateTime<Utc>> {
        let secs = i64::try_from(self.spec.timeout_seconds).unwrap_or(i64::MAX / 2_000);
        self.started_at
            .map(|s| s + chrono::Duration::seconds(secs.min(100 * 365 * 86_400)))
    }
}
