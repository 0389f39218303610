//! Conformance cases for a [`LeaseStore`] and the fenced writes it guards, for backends that
//! support several replicas ([`lease_conformance_suite!`](crate::lease_conformance_suite)).
//! The expiry is judged by the database's clock, which a test cannot move: the cases that
//! need a lapsed lease grant it for a millisecond and wait a few.

use std::sync::Arc;
use std::time::Duration;

use crate::lease::{Fence, LeaseStore, SCHEDULER_LEASE};
use crate::lifecycle::{Reason, TaskStatus};
use crate::store::{StoreError, TaskStore, Transition};

use super::{create, new_task};

const TTL: Duration = Duration::from_secs(30);

/// Expands to one `#[tokio::test]` per lease case, each on a fresh store from `$open` (an
/// async fn returning `(Arc<dyn TaskStore>, Arc<dyn LeaseStore>, guard)`, both views of one
/// database).
#[macro_export]
macro_rules! lease_conformance_suite {
    ($open:path) => {
        $crate::lease_conformance_suite!(@cases $open;
            lease_is_granted_renewed_and_refused_to_others,
            a_lapsed_lease_changes_hands_with_a_new_generation,
            release_hands_the_lease_over_at_once,
            racing_acquires_have_one_winner,
            fenced_transitions_apply_only_under_the_current_generation,
        );
    };
    (@cases $open:path; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let (store, leases, _guard) = $open().await;
                $crate::store::conformance::lease::$case(store, leases).await;
            }
        )*
    };
}

pub async fn lease_is_granted_renewed_and_refused_to_others(
    _: Arc<dyn TaskStore>,
    leases: Arc<dyn LeaseStore>,
) {
    let a = leases.acquire(SCHEDULER_LEASE, "a", TTL).await.unwrap();
    assert!(a.held_by("a"), "a free lease is granted: {a:?}");
    assert!(a.expires_at > a.now && a.expires_at <= a.now + TTL);
    let b = leases.acquire(SCHEDULER_LEASE, "b", TTL).await.unwrap();
    assert!(!b.held_by("b"), "a held lease is refused to others: {b:?}");
    assert_eq!((b.holder.as_str(), b.generation), ("a", a.generation));
    let renewed = leases.acquire(SCHEDULER_LEASE, "a", TTL).await.unwrap();
    assert!(renewed.held_by("a"));
    assert_eq!(
        renewed.generation, a.generation,
        "a renewal keeps the generation"
    );
    assert!(
        renewed.expires_at >= a.expires_at,
        "a renewal extends the lease"
    );
    let other = leases.acquire("another", "b", TTL).await.unwrap();
    assert!(other.held_by("b"), "leases of other names are independent");
}

pub async fn a_lapsed_lease_changes_hands_with_a_new_generation(
    _: Arc<dyn TaskStore>,
    leases: Arc<dyn LeaseStore>,
) {
    let short = Duration::from_millis(1);
    let a = leases.acquire(SCHEDULER_LEASE, "a", short).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let b = leases.acquire(SCHEDULER_LEASE, "b", TTL).await.unwrap();
    assert!(
        b.held_by("b"),
        "a lapsed lease is granted to the next: {b:?}"
    );
    assert!(
        b.generation > a.generation,
        "a change of hands bumps the generation"
    );
    let late = leases.acquire(SCHEDULER_LEASE, "a", TTL).await.unwrap();
    assert!(
        !late.held_by("a"),
        "the old holder can't take it back: {late:?}"
    );
}

pub async fn release_hands_the_lease_over_at_once(
    _: Arc<dyn TaskStore>,
    leases: Arc<dyn LeaseStore>,
) {
    let a = leases.acquire(SCHEDULER_LEASE, "a", TTL).await.unwrap();
    let stale = Fence(a.generation.0 - 1);
    leases.release(SCHEDULER_LEASE, "a", stale).await.unwrap();
    leases
        .release(SCHEDULER_LEASE, "b", a.generation)
        .await
        .unwrap();
    let still = leases.acquire(SCHEDULER_LEASE, "b", TTL).await.unwrap();
    assert!(
        !still.held_by("b"),
        "a release by another holder or generation is a no-op"
    );
    leases
        .release(SCHEDULER_LEASE, "a", a.generation)
        .await
        .unwrap();
    let b = leases.acquire(SCHEDULER_LEASE, "b", TTL).await.unwrap();
    assert!(b.held_by("b"), "a released lease is granted at once: {b:?}");
    assert!(b.generation > a.generation);
}

pub async fn racing_acquires_have_one_winner(_: Arc<dyn TaskStore>, leases: Arc<dyn LeaseStore>) {
    let tries = (0..16).map(|i| {
        let leases = leases.clone();
        tokio::spawn(async move {
            let holder = format!("r{i}");
            let lease = leases.acquire(SCHEDULER_LEASE, &holder, TTL).await.unwrap();
            (lease.held_by(&holder), lease.holder, lease.generation)
        })
    });
    let answers: Vec<_> = futures::future::join_all(tries)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners: Vec<_> = answers.iter().filter(|a| a.0).collect();
    assert_eq!(winners.len(), 1, "exactly one replica leads: {answers:?}");
    let (_, leader, generation) = winners[0].clone();
    for (_, holder, g) in &answers {
        assert_eq!(
            (holder, *g),
            (&leader, generation),
            "all agree on the leader"
        );
    }
}

pub async fn fenced_transitions_apply_only_under_the_current_generation(
    store: Arc<dyn TaskStore>,
    leases: Arc<dyn LeaseStore>,
) {
    let a = leases.acquire(SCHEDULER_LEASE, "a", TTL).await.unwrap();
    let task = create(&*store, new_task("fenced", &[], None)).await;
    let claim = |fence| Transition::new(TaskStatus::Starting, Reason::Scheduled).fence(Some(fence));
    let started = store
        .transition(task.id, TaskStatus::Queued, claim(a.generation))
        .await
        .expect("the current leader's write applies");
    assert_eq!(started.status, TaskStatus::Starting);

    leases
        .release(SCHEDULER_LEASE, "a", a.generation)
        .await
        .unwrap();
    let b = leases.acquire(SCHEDULER_LEASE, "b", TTL).await.unwrap();
    assert!(b.held_by("b"));
    let late =
        Transition::new(TaskStatus::Running, Reason::WorkerStarted).fence(Some(a.generation));
    match store.transition(task.id, TaskStatus::Starting, late).await {
        Err(StoreError::Fenced { fence }) => assert_eq!(fence, a.generation),
        other => panic!("a deposed leader's write must be fenced, got {other:?}"),
    }
    let now = store.get(task.id).await.unwrap().unwrap();
    assert_eq!(now.status, TaskStatus::Starting, "nothing changed");
    assert_eq!(
        store.history(task.id).await.unwrap().len(),
        2,
        "no history row"
    );

    let back = Transition::new(TaskStatus::Queued, Reason::Requeued).fence(Some(b.generation));
    let requeued = store.transition(task.id, TaskStatus::Starting, back).await;
    assert_eq!(
        requeued.expect("the new leader's write applies").status,
        TaskStatus::Queued
    );
    // A status that lost a race is still reported as such under a good fence.
    let stale =
        Transition::new(TaskStatus::Running, Reason::WorkerStarted).fence(Some(b.generation));
    assert!(matches!(
        store.transition(task.id, TaskStatus::Starting, stale).await,
        Err(StoreError::StatusChanged { .. })
    ));
}
