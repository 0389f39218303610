//! The [`TaskStore`] trait, implemented by delegating to the read, write and output modules.

use ao_core::lifecycle::TaskStatus;
use ao_core::store::{
    Created, EventRecord, FinishedTask, ListQuery, ListSubscription, LogLine, Page, StoreError,
    StoreResult, Subscription, TaskStore, Transition,
};
use ao_core::task::{NewTask, Task, TaskId, TaskResult, TransitionRecord};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::PgStore;
use crate::output::Stream;

fn texts(events: &[serde_json::Value]) -> Vec<String> {
    events.iter().map(|e| e.to_string()).collect()
}

#[async_trait]
impl TaskStore for PgStore {
    async fn create(&self, task: NewTask, max_queued: usize) -> StoreResult<Created> {
        self.insert(task, max_queued).await
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
        self.apply(id, from, t).await
    }

    async fn request_cancel(&self, id: TaskId) -> StoreResult<Task> {
        self.cancel(id).await
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
        self.store_token_hash(id, hash).await
    }

    async fn worker_token_hash(&self, id: TaskId) -> StoreResult<Option<String>> {
        self.token_hash(id).await
    }

    async fn set_result(&self, id: TaskId, result: &TaskResult) -> StoreResult<()> {
        self.store_result(id, result).await
    }

    async fn append_logs(&self, id: TaskId, lines: &[String]) -> StoreResult<()> {
        self.append(Stream::Logs, id, lines).await?;
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
        self.append(Stream::Events, id, &texts(events)).await
    }

    async fn append_events_at(
        &self,
        id: TaskId,
        first_seq: i64,
        events: &[serde_json::Value],
    ) -> StoreResult<i64> {
        self.append_numbered(Stream::Events, id, first_seq, &texts(events))
            .await
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

    /// One round trip, not retried: readiness must report a database that does not answer.
    async fn ping(&self) -> StoreResult<()> {
        self.ping_once().await
    }

    fn subscribe(&self, id: TaskId) -> Subscription {
        self.changes.subscribe(id)
    }

    fn subscribe_list(&self) -> ListSubscription {
        self.changes.subscribe_list()
    }
}
