//! The output pipeline against a fake store that can block, fail and record its calls.
//! Time is paused (`start_paused`), so retry backoff costs nothing and nothing sleeps.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::{Semaphore, mpsc};

use super::*;
use crate::lifecycle::TaskStatus;
use crate::store::{Created, EventRecord, ListQuery, LogLine, Page, StoreResult, Transition};
use crate::task::{NewTask, Task, TaskResult, TransitionRecord};

#[derive(Default)]
struct State {
    lines: Vec<String>,
    /// Sizes of the successful `append_logs` calls.
    batches: Vec<usize>,
    /// Backend errors to return before succeeding.
    failures: usize,
    /// Answer every call with `NotFound`.
    gone: bool,
}

/// A store that only keeps log lines. `gate`, when set, holds each append until a permit is
/// added, and `entered` tells the test that an append is waiting there.
struct FakeStore {
    state: Mutex<State>,
    gate: Option<Semaphore>,
    entered: Semaphore,
}

impl FakeStore {
    fn new(lines: &[&str]) -> Arc<Self> {
        Self::build(lines, None)
    }
    fn gated() -> Arc<Self> {
        Self::build(&[], Some(Semaphore::new(0)))
    }
    fn build(lines: &[&str], gate: Option<Semaphore>) -> Arc<Self> {
        let state = State {
            lines: lines.iter().map(|s| s.to_string()).collect(),
            ..State::default()
        };
        Arc::new(FakeStore {
            state: Mutex::new(state),
            gate,
            entered: Semaphore::new(0),
        })
    }
    fn lines(&self) -> Vec<String> {
        self.state.lock().unwrap().lines.clone()
    }
    fn batches(&self) -> Vec<usize> {
        self.state.lock().unwrap().batches.clone()
    }
    fn set(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap());
    }
    fn check(&self) -> StoreResult<()> {
        let mut s = self.state.lock().unwrap();
        if s.gone {
            return Err(StoreError::NotFound);
        }
        if s.failures > 0 {
            s.failures -= 1;
            return Err(StoreError::backend(std::io::Error::other("disk busy")));
        }
        Ok(())
    }
}

fn unused() -> ! {
    unreachable!("the output pipeline only reads and appends log lines")
}

#[async_trait]
impl TaskStore for FakeStore {
    async fn append_logs(&self, _id: TaskId, lines: &[String]) -> StoreResult<()> {
        if let Some(gate) = &self.gate {
            self.entered.add_permits(1);
            gate.acquire().await.unwrap().forget();
        }
        self.check()?;
        let mut s = self.state.lock().unwrap();
        s.lines.extend_from_slice(lines);
        s.batches.push(lines.len());
        Ok(())
    }
    async fn log_count(&self, _id: TaskId) -> StoreResult<i64> {
        self.check()?;
        Ok(self.state.lock().unwrap().lines.len() as i64)
    }
    async fn create(&self, _: NewTask, _: usize) -> StoreResult<Created> {
        unused()
    }
    async fn get(&self, _: TaskId) -> StoreResult<Option<Task>> {
        unused()
    }
    async fn list(&self, _: &ListQuery) -> StoreResult<Page> {
        unused()
    }
    async fn history(&self, _: TaskId) -> StoreResult<Vec<TransitionRecord>> {
        unused()
    }
    async fn transition(&self, _: TaskId, _: TaskStatus, _: Transition) -> StoreResult<Task> {
        unused()
    }
    async fn request_cancel(&self, _: TaskId) -> StoreResult<Task> {
        unused()
    }
    async fn queued(&self, _: usize) -> StoreResult<Vec<Task>> {
        unused()
    }
    async fn active(&self) -> StoreResult<Vec<Task>> {
        unused()
    }
    async fn count_by_status(&self) -> StoreResult<Vec<(TaskStatus, u64)>> {
        unused()
    }
    async fn finished_since(
        &self,
        _: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<Vec<crate::store::FinishedTask>> {
        unused()
    }
    async fn set_worker_token_hash(&self, _: TaskId, _: &str) -> StoreResult<()> {
        unused()
    }
    async fn worker_token_hash(&self, _: TaskId) -> StoreResult<Option<String>> {
        unused()
    }
    async fn set_result(&self, _: TaskId, _: &TaskResult) -> StoreResult<()> {
        unused()
    }
    async fn logs(&self, _: TaskId, _: i64, _: usize) -> StoreResult<Vec<LogLine>> {
        unused()
    }
    async fn append_events(&self, _: TaskId, _: &[serde_json::Value]) -> StoreResult<i64> {
        unused()
    }
    async fn append_events_at(
        &self,
        _: TaskId,
        _: i64,
        _: &[serde_json::Value],
    ) -> StoreResult<i64> {
        unused()
    }
    async fn events(&self, _: TaskId, _: i64, _: usize) -> StoreResult<Vec<EventRecord>> {
        unused()
    }
    async fn ping(&self) -> StoreResult<()> {
        unused()
    }
    fn subscribe(&self, _id: TaskId) -> crate::store::Subscription {
        unused()
    }
    fn subscribe_list(&self) -> crate::store::ListSubscription {
        unused()
    }
}

fn pipeline(
    store: &Arc<FakeStore>,
    batch_lines: usize,
) -> (OutputPipeline, mpsc::UnboundedReceiver<RuntimeEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let cfg = OutputConfig {
        batch_lines,
        ..OutputConfig::default()
    };
    (OutputPipeline::new(store.clone(), tx, cfg), rx)
}

fn exit0() -> ExitInfo {
    ExitInfo {
        code: Some(0),
        ..ExitInfo::default()
    }
}

#[tokio::test(start_paused = true)]
async fn exited_is_sent_only_after_every_line_is_stored() {
    let store = FakeStore::gated();
    let (p, mut events) = pipeline(&store, 500);
    let out = p.open(TaskId::new());
    out.write(b"one\ntwo\nthree".to_vec()).await.unwrap();
    let ending = tokio::spawn(out.exited(exit0()));
    // The copier is inside `append_logs`, held by the gate: no event may be out yet.
    store.entered.acquire().await.unwrap().forget();
    assert!(
        events.try_recv().is_err(),
        "Exited before the output was stored"
    );
    assert!(store.lines().is_empty());
    store.gate.as_ref().unwrap().add_permits(10);
    ending.await.unwrap().unwrap();
    let ev = events.recv().await.unwrap();
    assert!(matches!(ev, RuntimeEvent::Exited { .. }), "{ev:?}");
    // The incomplete last line is stored too, at the end.
    assert_eq!(store.lines(), ["one", "two", "three"]);
}

#[tokio::test(start_paused = true)]
async fn lines_are_stored_in_batches_of_at_most_the_limit() {
    let store = FakeStore::new(&[]);
    let (p, _events) = pipeline(&store, 500);
    let out = p.open(TaskId::new());
    let text: String = (1..=1200).map(|i| format!("line {i}\n")).collect();
    out.write(text.into_bytes()).await.unwrap();
    out.finish().await.unwrap();
    assert_eq!(store.batches(), [500, 500, 200]);
    let lines = store.lines();
    assert_eq!(
        (lines[0].as_str(), lines[1199].as_str()),
        ("line 1", "line 1200")
    );
}

#[tokio::test(start_paused = true)]
async fn resumes_after_the_lines_the_store_already_has() {
    let store = FakeStore::new(&["a", "b"]);
    let (p, _events) = pipeline(&store, 500);
    let out = p.open(TaskId::new());
    // The output read again from its start after a restart.
    out.write(b"a\nb\nc\n".to_vec()).await.unwrap();
    out.finish().await.unwrap();
    assert_eq!(store.lines(), ["a", "b", "c"]);
}

#[tokio::test(start_paused = true)]
async fn a_rewound_stream_stores_nothing_twice() {
    let store = FakeStore::new(&[]);
    let (p, _events) = pipeline(&store, 2);
    let out = p.open(TaskId::new());
    out.write(b"a\nb\nc\nhal".to_vec()).await.unwrap();
    // The stream broke mid-line; a new one starts from the beginning.
    out.rewind().await.unwrap();
    out.write(b"a\nb\nc\nhalf\nd\n".to_vec()).await.unwrap();
    out.finish().await.unwrap();
    assert_eq!(store.lines(), ["a", "b", "c", "half", "d"]);
}

#[tokio::test(start_paused = true)]
async fn passing_store_failures_are_retried_in_order() {
    let store = FakeStore::new(&[]);
    let (p, mut events) = pipeline(&store, 500);
    // The line count and the first appends fail, then the store recovers.
    store.set(|s| s.failures = 4);
    let out = p.open(TaskId::new());
    out.write(b"x\ny\n".to_vec()).await.unwrap();
    out.write(b"z\n".to_vec()).await.unwrap();
    out.exited(exit0()).await.unwrap();
    assert_eq!(store.lines(), ["x", "y", "z"]);
    assert!(matches!(
        events.recv().await,
        Some(RuntimeEvent::Exited { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_store_that_keeps_failing_is_surfaced_and_the_exit_still_reported() {
    let store = FakeStore::new(&[]);
    let (p, mut events) = pipeline(&store, 500);
    let out = p.open(TaskId::new());
    out.write(b"first\n".to_vec()).await.unwrap();
    // Wait until `first` is stored, then break the store for good.
    while store.lines().is_empty() {
        tokio::task::yield_now().await;
    }
    store.set(|s| s.failures = usize::MAX);
    out.write(b"second\nthird\n".to_vec()).await.unwrap();
    let err = out.lost("gone".into()).await.unwrap_err();
    assert!(
        matches!(&err, OutputError::Store { lost: 2, source } if matches!(**source, StoreError::Backend(_))),
        "{err:?}"
    );
    assert_eq!(store.lines(), ["first"]);
    assert!(matches!(
        events.recv().await,
        Some(RuntimeEvent::Lost { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_permanent_store_error_is_not_retried() {
    let store = FakeStore::new(&[]);
    store.set(|s| s.gone = true);
    let (p, _events) = pipeline(&store, 500);
    let out = p.open(TaskId::new());
    out.write(b"a\n".to_vec()).await.unwrap();
    let started = tokio::time::Instant::now();
    let err = out.finish().await.unwrap_err();
    assert!(
        matches!(&err, OutputError::Store { lost: 1, source } if matches!(**source, StoreError::NotFound)),
        "{err:?}"
    );
    // No backoff was waited (virtual time did not move).
    assert_eq!(started.elapsed(), std::time::Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn dropped_handles_keep_complete_lines_and_send_no_event() {
    let store = FakeStore::new(&[]);
    let (p, mut events) = pipeline(&store, 500);
    let out = p.open(TaskId::new());
    out.write(b"kept\nnot yet".to_vec()).await.unwrap();
    drop((out, p));
    // The copier ends when its last handle is gone; the channel closes with it.
    assert!(events.recv().await.is_none());
    assert_eq!(store.lines(), ["kept"]);
}
