//! The conformance suite every [`TaskStore`] backend runs on itself (cargo feature
//! `conformance`). A backend is done when it passes this suite, not when it compiles.
//!
//! Each case is an async function taking a fresh, empty store. A backend's test file opens a
//! store per case and expands [`store_conformance_suite!`](crate::store_conformance_suite)
//! with its factory, which generates one `#[tokio::test]` per case on a multi-threaded
//! runtime:
//!
//! ```text
//! async fn open() -> (std::sync::Arc<dyn ao_core::store::TaskStore>, tempfile::TempDir) {
//!     // ...
//! }
//! ao_core::store_conformance_suite!(open);
//! ```
//!
//! The factory returns the store and a guard (a temporary directory, a container handle)
//! that lives until the case ends. The `concurrent` cases race many tasks against one store;
//! a backend should run the suite on a store with several connections so that the races
//! reach the database and not a single connection's queue.

pub mod concurrent;
pub mod lease;
pub mod list;
pub mod output;
pub mod tasks;

pub use concurrent::*;
pub use list::*;
pub use output::*;
pub use tasks::*;

use std::collections::BTreeMap;

use chrono::Utc;

use crate::lifecycle::{Reason, TaskStatus};
use crate::store::{Created, TaskStore, Transition};
use crate::task::{NewTask, Task, TaskId, TaskSpec};

/// Expands to one `#[tokio::test]` per conformance case, each on a fresh store from
/// `$open` (an async fn returning `(Arc<dyn TaskStore>, guard)`).
#[macro_export]
macro_rules! store_conformance_suite {
    ($open:path) => {
        $crate::store_conformance_suite!(@cases $open;
            create_get_and_history,
            idempotency_key_returns_same_task_or_conflicts,
            queue_bound_is_enforced,
            queue_bound_counts_only_queued_tasks,
            transitions_are_checked_and_compare_and_set,
            transitions_keep_status_counts,
            cancel_queued_running_and_finished,
            list_filters_and_paginates_newest_first,
            list_label_filters_match_all_pairs,
            list_with_thousands_of_label_filters,
            list_searches_prompts,
            finished_since_returns_terminal_tasks,
            logs_and_events_append_in_order,
            output_of_unknown_task,
            subscription_wakes_only_for_its_task,
            list_subscription_wakes_for_tasks_not_output,
            racing_compare_and_set_has_one_winner,
            concurrent_creates_never_exceed_the_bound,
            concurrent_idempotent_creates_make_one_task,
            concurrent_log_appends_are_contiguous,
            concurrent_event_appends_are_contiguous,
            racing_numbered_batches_are_kept_once,
            cancel_racing_the_scheduler_claim,
            fenced_transition_without_its_lease_is_refused,
            transition_stores_token_hash_and_result_with_the_move,
        );
    };
    (@cases $open:path; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let (store, _guard) = $open().await;
                $crate::store::conformance::$case(store).await;
            }
        )*
    };
}

/// A valid spec with the given prompt and labels. Built from JSON so that fields added to
/// [`TaskSpec`] later take their defaults here too.
pub fn spec(prompt: &str, labels: &[(&str, &str)]) -> TaskSpec {
    let labels: BTreeMap<&str, &str> = labels.iter().copied().collect();
    serde_json::from_value(serde_json::json!({
        "prompt": prompt,
        "timeout_seconds": 60,
        "labels": labels,
    }))
    .expect("a minimal spec deserializes")
}

/// A new task; its request hash derives from the prompt, so the same prompt is "the same
/// request" for idempotency.
pub fn new_task(prompt: &str, labels: &[(&str, &str)], key: Option<&str>) -> NewTask {
    NewTask {
        id: TaskId::new(),
        spec: spec(prompt, labels),
        idempotency_key: key.map(str::to_string),
        request_hash: format!("h-{prompt}"),
        created_at: Utc::now(),
    }
}

/// Create a task under a roomy bound and insist it is new.
pub async fn create(store: &dyn TaskStore, task: NewTask) -> Task {
    match store.create(task, 10_000).await.expect("create") {
        Created::New(t) => t,
        Created::Existing(t) => panic!("expected a new task, got existing {}", t.id),
    }
}

/// Move a task along a legal path, e.g. `[Starting, Running]` from `queued`.
pub async fn advance(store: &dyn TaskStore, id: TaskId, path: &[TaskStatus]) -> Task {
    let mut task = store.get(id).await.expect("get").expect("task exists");
    for &to in path {
        let reason = match to {
            TaskStatus::Starting => Reason::Scheduled,
            TaskStatus::Running => Reason::WorkerStarted,
            TaskStatus::Queued => Reason::Requeued,
            TaskStatus::Cancelled => Reason::CancelledByUser,
            _ => Reason::Completed,
        };
        task = store
            .transition(id, task.status, Transition::new(to, reason))
            .await
            .unwrap_or_else(|e| panic!("{} -> {to}: {e}", task.status));
    }
    task
}

/// The count the store reports for one status (0 if it reports none).
pub async fn count_of(store: &dyn TaskStore, status: TaskStatus) -> u64 {
    store
        .count_by_status()
        .await
        .expect("count_by_status")
        .into_iter()
        .find(|(s, _)| *s == status)
        .map_or(0, |(_, n)| n)
}
