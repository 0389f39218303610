//! Conformance cases with concurrent writers: racers are lined up on a barrier and released
//! together, and the store must keep every promise of the trait's contract (one winner per
//! compare-and-set, a bound never exceeded, one task per idempotency key, sequence numbers
//! contiguous without duplicates).

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::Barrier;

use super::{count_of, create, new_task};
use crate::lifecycle::{Reason, TaskStatus};
use crate::store::{Created, StoreError, TaskStore, Transition};
use crate::task::TaskId;

const RACERS: usize = 24;

/// Run `n` copies of `f` released at the same moment; results in racer order.
async fn race<T, F, Fut>(s: &Arc<dyn TaskStore>, n: usize, f: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(Arc<dyn TaskStore>, usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let run = f(s.clone(), i);
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                run.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for h in handles {
        out.push(h.await.expect("racer panicked"));
    }
    out
}

pub async fn racing_compare_and_set_has_one_winner(s: Arc<dyn TaskStore>) {
    for round in 0..4 {
        let t = create(&*s, new_task(&format!("p{round}"), &[], None)).await;
        let results = race(&s, RACERS, move |s, i| async move {
            let to = Transition::new(TaskStatus::Starting, Reason::Scheduled)
                .message(format!("racer {i}"));
            s.transition(t.id, TaskStatus::Queued, to).await
        })
        .await;
        let winners: Vec<usize> = (0..RACERS).filter(|&i| results[i].is_ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        for r in &results {
            match r {
                Ok(_) => {}
                Err(StoreError::StatusChanged {
                    expected: TaskStatus::Queued,
                    actual: TaskStatus::Starting,
                }) => {}
                Err(e) => panic!("round {round}: a loser got {e}"),
            }
        }
        let stored = s.get(t.id).await.unwrap().unwrap();
        let winner = format!("racer {}", winners[0]);
        assert_eq!(stored.message.as_deref(), Some(winner.as_str()));
        assert_eq!(s.history(t.id).await.unwrap().len(), 2, "one recorded move");
    }
    assert_eq!(count_of(&*s, TaskStatus::Queued).await, 0);
    assert_eq!(count_of(&*s, TaskStatus::Starting).await, 4);
}

/// Rounds of racers against a bound with a few free slots: exactly the free slots are taken.
pub async fn concurrent_creates_never_exceed_the_bound(s: Arc<dyn TaskStore>) {
    const FREE: usize = 5;
    create(&*s, new_task("already", &[], None)).await;
    for round in 0..8 {
        let bound = 1 + round * FREE + FREE;
        let results = race(&s, 2 * RACERS, move |s, i| async move {
            s.create(new_task(&format!("r{round}-{i}"), &[], None), bound)
                .await
        })
        .await;
        let mut admitted = 0;
        for r in results {
            match r {
                Ok(Created::New(_)) => admitted += 1,
                Err(StoreError::QueueFull { limit }) if limit == bound => {}
                Ok(Created::Existing(t)) => panic!("no key, yet existing {}", t.id),
                Err(e) => panic!("round {round}: unexpected {e}"),
            }
        }
        assert_eq!(admitted, FREE, "round {round}: exactly the free slots");
        assert_eq!(count_of(&*s, TaskStatus::Queued).await, bound as u64);
        assert_eq!(s.queued(1000).await.unwrap().len(), bound);
    }
}

/// Racers with one key: one task is made; same-body racers get it, others a conflict.
pub async fn concurrent_idempotent_creates_make_one_task(s: Arc<dyn TaskStore>) {
    let results = race(&s, RACERS, |s, i| async move {
        let prompt = if i % 3 == 0 { "other" } else { "same" };
        let r = s.create(new_task(prompt, &[], Some("key")), 1000).await;
        (prompt, r)
    })
    .await;
    let mut made = Vec::new();
    let mut seen = BTreeSet::new();
    let mut conflicts = Vec::new();
    for (prompt, r) in results {
        match r {
            Ok(Created::New(t)) => {
                made.push(prompt);
                seen.insert(t.id);
            }
            Ok(Created::Existing(t)) => {
                seen.insert(t.id);
            }
            Err(StoreError::IdempotencyConflict) => conflicts.push(prompt),
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(made.len(), 1, "one task made: {made:?}");
    assert_eq!(seen.len(), 1, "every success is the same task");
    assert!(
        conflicts.iter().all(|p| *p != made[0]),
        "same body conflicted"
    );
    let expected_conflicts = (0..RACERS)
        .filter(|i| (if i % 3 == 0 { "other" } else { "same" }) != made[0])
        .count();
    assert_eq!(conflicts.len(), expected_conflicts);
    assert_eq!(count_of(&*s, TaskStatus::Queued).await, 1);
}

const BATCHES: usize = 6;
const BATCH: usize = 5;

/// Every racer's batches, as texts tagged with racer and batch.
fn batch_text(racer: usize, batch: usize, k: usize) -> String {
    format!("r{racer}-b{batch}-{k}")
}

/// Check that `texts` (in sequence order, sequence numbers 1..) hold every racer's batches
/// once, each batch contiguous and in order.
fn check_batches(texts: &[String]) {
    assert_eq!(texts.len(), RACERS * BATCHES * BATCH);
    let unique: BTreeSet<&String> = texts.iter().collect();
    assert_eq!(unique.len(), texts.len(), "a text was stored twice");
    for chunk in texts.chunks(BATCH) {
        let head = chunk[0].rsplit_once('-').expect("tagged").0;
        for (k, t) in chunk.iter().enumerate() {
            assert_eq!(*t, format!("{head}-{k}"), "batch {head} interleaved");
        }
    }
}

pub async fn concurrent_log_appends_are_contiguous(s: Arc<dyn TaskStore>) {
    let t = create(&*s, new_task("p", &[], None)).await;
    race(&s, RACERS, move |s, r| async move {
        for b in 0..BATCHES {
            let lines: Vec<String> = (0..BATCH).map(|k| batch_text(r, b, k)).collect();
            s.append_logs(t.id, &lines).await.expect("append");
        }
    })
    .await;
    let total = (RACERS * BATCHES * BATCH) as i64;
    assert_eq!(s.log_count(t.id).await.unwrap(), total);
    let lines = s.logs(t.id, 0, 10_000).await.unwrap();
    let seqs: Vec<i64> = lines.iter().map(|l| l.seq).collect();
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "contiguous from 1");
    let texts: Vec<String> = lines.into_iter().map(|l| l.line).collect();
    check_batches(&texts);
}

pub async fn concurrent_event_appends_are_contiguous(s: Arc<dyn TaskStore>) {
    let t = create(&*s, new_task("p", &[], None)).await;
    let lasts = race(&s, RACERS, move |s, r| async move {
        let mut lasts = Vec::new();
        for b in 0..BATCHES {
            let events: Vec<serde_json::Value> = (0..BATCH)
                .map(|k| serde_json::json!({"type": "x", "tag": batch_text(r, b, k)}))
                .collect();
            let last = s.append_events(t.id, &events).await.expect("append");
            lasts.push((last, batch_text(r, b, 0)));
        }
        lasts
    })
    .await;
    let total = (RACERS * BATCHES * BATCH) as i64;
    let events = s.events(t.id, 0, 10_000).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "contiguous from 1");
    let texts: Vec<String> = events
        .iter()
        .map(|e| e.event["tag"].as_str().expect("tag").to_string())
        .collect();
    check_batches(&texts);
    // Each call returned the last number of its own batch.
    for (last, first_text) in lasts.into_iter().flatten() {
        let first = usize::try_from(last).unwrap() - BATCH;
        assert_eq!(texts[first], first_text, "append returned {last}");
    }
}

/// Copies of the same numbered batch (a worker resending while its first copy is still being
/// stored) race each other: the events are kept once, every copy gets the same last number,
/// and a batch past the end is refused as a gap.
pub async fn racing_numbered_batches_are_kept_once(s: Arc<dyn TaskStore>) {
    let t = create(&*s, new_task("p", &[], None)).await;
    let first: Vec<serde_json::Value> = (1..=3).map(|k| serde_json::json!({"k": k})).collect();
    assert_eq!(s.append_events_at(t.id, 1, &first).await.unwrap(), 3);
    // Events 2..=6: 2 and 3 are held already, 4..=6 are new.
    let batch: Vec<serde_json::Value> = (2..=6).map(|k| serde_json::json!({"k": k})).collect();
    let batch = Arc::new(batch);
    let lasts = race(&s, RACERS, move |s, _| {
        let batch = batch.clone();
        async move { s.append_events_at(t.id, 2, &batch).await.expect("append") }
    })
    .await;
    assert!(
        lasts.iter().all(|l| *l == 6),
        "every copy sees 6: {lasts:?}"
    );
    let events = s.events(t.id, 0, 100).await.unwrap();
    let ks: Vec<i64> = events
        .iter()
        .map(|e| e.event["k"].as_i64().unwrap())
        .collect();
    assert_eq!(ks, (1..=6).collect::<Vec<_>>(), "kept once, in order");
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=6).collect::<Vec<_>>());
    match s.append_events_at(t.id, 8, &first).await {
        Err(StoreError::SequenceGap { last: 6, first: 8 }) => {}
        other => panic!("expected a gap error, got {other:?}"),
    }
    match s.append_events_at(TaskId::new(), 1, &first).await {
        Err(StoreError::NotFound) => {}
        other => panic!("expected not found, got {other:?}"),
    }
}

/// What one racer of [`cancel_racing_the_scheduler_claim`] saw.
enum Move {
    Cancel(Result<TaskStatus, StoreError>),
    Claim(TaskId, bool),
}

/// A user's cancel racing the scheduler's claim: the task ends either cancelled (and the
/// claim lost) or claimed and flagged, never both and never neither.
pub async fn cancel_racing_the_scheduler_claim(s: Arc<dyn TaskStore>) {
    const TASKS: usize = 12;
    let mut ids: Vec<TaskId> = Vec::new();
    for i in 0..TASKS {
        ids.push(create(&*s, new_task(&format!("p{i}"), &[], None)).await.id);
    }
    let ids = Arc::new(ids);
    let results = race(&s, TASKS * 2, move |s, i| {
        let id = ids[i / 2];
        async move {
            if i % 2 == 0 {
                Move::Cancel(s.request_cancel(id).await.map(|t| t.status))
            } else {
                let to = Transition::new(TaskStatus::Starting, Reason::Scheduled);
                Move::Claim(id, s.transition(id, TaskStatus::Queued, to).await.is_ok())
            }
        }
    })
    .await;
    let mut cancelled = 0;
    for pair in results.chunks(2) {
        let (Move::Cancel(cancel), Move::Claim(id, claimed)) = (&pair[0], &pair[1]) else {
            panic!("racer order");
        };
        let cancel = cancel
            .as_ref()
            .expect("cancel of an existing task succeeds");
        let task = s.get(*id).await.unwrap().unwrap();
        if *claimed {
            assert_eq!(*cancel, TaskStatus::Starting);
            assert_eq!(task.status, TaskStatus::Starting);
            assert!(task.cancel_requested, "claimed task lost its cancel flag");
        } else {
            cancelled += 1;
            assert_eq!(*cancel, TaskStatus::Cancelled);
            assert_eq!(task.status, TaskStatus::Cancelled);
        }
    }
    assert_eq!(count_of(&*s, TaskStatus::Cancelled).await, cancelled);
    assert_eq!(
        count_of(&*s, TaskStatus::Starting).await,
        TASKS as u64 - cancelled
    );
    assert_eq!(count_of(&*s, TaskStatus::Queued).await, 0);
}
