//! The [`TaskStore`] trait: reads go to the read and output modules on the read-only pool,
//! writes become [`Op`]s for the writer (which runs them with the write and output modules).

use crate::output::Stream;
use crate::writer::Op;
use crate::{SqliteStore, db_err};
use ao_core::lifecycle::TaskStatus;
use ao_core::store::{
    Created, EventRecord, FinishedTask, ListQuery, ListSubscription, LogLine, Page, StoreError,
    StoreResult, Subscription, TaskStore, Transition,
};
use ao_core::task::{NewTask, Task, TaskId, TaskResult, TransitionRecord};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

impl SqliteStore {
    /// Append a non-empty batch through the writer.
    async fn append(&self, stream: Stream, id: TaskId, texts: Vec<String>) -> StoreResult<i64> {
        let op = Op::Append { stream, id, texts };
        self.writer.run(op).await?.seq()
    }
}

#[async_trait]
impl TaskStore for SqliteStore {
    async fn create(&self, task: NewTask, max_queued: usize) -> StoreResult<Created> {
        let spec = serde_json::to_string(&task.spec).map_err(StoreError::backend)?;
        let op = Op::Create {
            task,
            spec,
            max_queued,
        };
        self.writer.run(op).await?.created()
    }

    async fn get(&self, id: TaskId) -> StoreResult<Option<Task>> {
        self.one(id).await
    }

    async fn list(&self, query: &ListQuery) -> StoreResult<Page> {
        self.page(query).await
    }

    async fn history(&self, id: TaskId) -> StoreResult<Vec<TransitionRecord>> {
        self.transitions(id).await
    }

    async fn transition(&self, id: TaskId, from: TaskStatus, t: Transition) -> StoreResult<Task> {
        self.writer
            .run(Op::Transition { id, from, t })
            .await?
            .task()
    }

    async fn request_cancel(&self, id: TaskId) -> StoreResult<Task> {
        self.writer.run(Op::Cancel { id }).await?.task()
    }

    async fn queued(&self, limit: usize) -> StoreResult<Vec<Task>> {
        self.oldest_queued(limit).await
    }

    async fn active(&self) -> StoreResult<Vec<Task>> {
        self.starting_or_running().await
    }

    async fn finished_since(&self, since: DateTime<Utc>) -> StoreResult<Vec<FinishedTask>> {
        self.finished_from(since).await
    }

    async fn count_by_status(&self) -> StoreResult<Vec<(TaskStatus, u64)>> {
        self.counts().await
    }

    async fn set_worker_token_hash(&self, id: TaskId, hash: &str) -> StoreResult<()> {
        let hash = hash.to_string();
        self.writer.run(Op::TokenHash { id, hash }).await?.unit()
    }

    async fn worker_token_hash(&self, id: TaskId) -> StoreResult<Option<String>> {
        self.token_hash(id).await
    }

    async fn set_result(&self, id: TaskId, result: &TaskResult) -> StoreResult<()> {
        let json = serde_json::to_string(result).map_err(StoreError::backend)?;
        self.writer.run(Op::SetResult { id, json }).await?.unit()
    }

    async fn append_logs(&self, id: TaskId, lines: &[String]) -> StoreResult<()> {
        if !lines.is_empty() {
            self.append(Stream::Logs, id, lines.to_vec()).await?;
        }
        Ok(())
    }

    async fn logs(&self, id: TaskId, after: i64, limit: usize) -> StoreResult<Vec<LogLine>> {
        let rows = self.read(Stream::Logs, id, after, limit).await?;
        Ok(rows
            .into_iter()
            .map(|(seq, line, at)| LogLine { seq, line, at })
            .collect())
    }

    async fn log_count(&self, id: TaskId) -> StoreResult<i64> {
        self.last_seq(Stream::Logs, id).await
    }

    async fn append_events(&self, id: TaskId, events: &[serde_json::Value]) -> StoreResult<i64> {
        if events.is_empty() {
            return self.last_seq(Stream::Events, id).await;
        }
        let texts = events.iter().map(|e| e.to_string()).collect();
        self.append(Stream::Events, id, texts).await
    }

    async fn append_events_at(
        &self,
        id: TaskId,
        first_seq: i64,
        events: &[serde_json::Value],
    ) -> StoreResult<i64> {
        let texts = events.iter().map(|e| e.to_string()).collect();
        let op = Op::AppendAt {
            stream: Stream::Events,
            id,
            first_seq,
            texts,
        };
        self.writer.run(op).await?.seq()
    }

    async fn events(&self, id: TaskId, after: i64, limit: usize) -> StoreResult<Vec<EventRecord>> {
        let rows = self.read(Stream::Events, id, after, limit).await?;
        rows.into_iter()
            .map(|(seq, text, at)| {
                let event = serde_json::from_str(&text).map_err(StoreError::backend)?;
                Ok(EventRecord { seq, event, at })
            })
            .collect()
    }

    async fn ping(&self) -> StoreResult<()> {
        self.writer.check()?;
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    fn subscribe(&self, id: TaskId) -> Subscription {
        self.changes.subscribe(id)
    }

    fn subscribe_list(&self) -> ListSubscription {
        self.changes.subscribe_list()
    }
}
