//! A replica frozen in the middle of a write (SIGSTOP, a partition, a dead node) leaves its
//! transaction open on the server. The store's sessions carry an idle-in-transaction limit,
//! so the server ends such a session, and its locks (the lease row's share lock among them)
//! go with it: the next replica takes the lease over instead of waiting for TCP to give up.
//! Also: a password the user forgot to percent-encode never shows in a start-up error.

use std::sync::Arc;
use std::time::Duration;

use ao_core::lease::{LeaseStore, SCHEDULER_LEASE};
use ao_store_postgres::{PgOptions, PgStore};
use ao_testkit::postgres::fresh_database;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_frozen_inside_a_fenced_write_does_not_block_the_takeover() {
    let db = fresh_database().await;
    let options = PgOptions {
        idle_in_transaction_timeout: Duration::from_millis(500),
        ..PgOptions::default()
    };
    let a = Arc::new(PgStore::connect(db.url(), options.clone()).await.unwrap());
    let b = PgStore::connect(db.url(), options).await.unwrap();
    let g1 = a
        .acquire(SCHEDULER_LEASE, "a", Duration::from_millis(300))
        .await
        .unwrap()
        .generation;

    // What `a`'s fenced transition had sent when it froze: the share lock on the lease row,
    // on one of its own sessions, and then nothing.
    let mut frozen = a.pool().begin().await.unwrap();
    sqlx::query("SELECT 1 FROM leases WHERE name = $1 AND generation = $2 FOR SHARE")
        .bind(SCHEDULER_LEASE)
        .bind(g1.0)
        .fetch_one(&mut *frozen)
        .await
        .unwrap();

    // `b` tries as its elector would, a few times a second.
    let takeover = async {
        loop {
            let l = b
                .acquire(SCHEDULER_LEASE, "b", Duration::from_secs(10))
                .await
                .unwrap();
            if l.held_by("b") {
                return l;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let took = tokio::time::timeout(Duration::from_secs(10), takeover).await;
    assert!(
        matches!(&took, Ok(l) if l.generation > g1),
        "the frozen session was ended and the lease changed hands: {took:?}"
    );
    // The frozen session is gone: its transaction can't commit anything late.
    let late = sqlx::query("SELECT 1").execute(&mut *frozen).await;
    assert!(late.is_err(), "the server ended the frozen session");
}

#[tokio::test]
async fn a_password_with_reserved_characters_never_shows_in_a_start_up_error() {
    for url in [
        "postgres://orchestrator:s3cr?et-pw@127.0.0.1:1/orchestrator",
        "postgres://orchestrator:s3cr#et-pw@127.0.0.1:1/orchestrator",
        "postgres://orchestrator:s3cr/et-pw@127.0.0.1:1/orchestrator",
    ] {
        let err = match PgStore::connect(url, PgOptions::default()).await {
            Ok(_) => panic!("connected to {url}"),
            Err(e) => e,
        };
        let shown = ao_core::runtime::error_chain(&err);
        assert!(!shown.contains("et-pw"), "the password shows: {shown}");
    }
}
