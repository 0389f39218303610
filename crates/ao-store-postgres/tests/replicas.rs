//! Two stores on one database stand for two replicas: a follower on one wakes for writes made
//! through the other (LISTEN/NOTIFY), the listener comes back after its connection is killed
//! and wakes its followers, and queries survive the server killing their connections.
//! Waits are bounded by a timeout that only fails the test; nothing sleeps for timing.

use std::time::Duration;

use ao_core::lifecycle::TaskStatus;
use ao_core::store::TaskStore;
use ao_core::store::conformance::{advance, create, new_task};
use ao_store_postgres::{APPLICATION_NAME, LISTENER_APPLICATION_NAME, PgOptions, PgStore};
use ao_testkit::postgres::{TestDatabase, fresh_database};

const WAIT: Duration = Duration::from_secs(20);

async fn replicas() -> (PgStore, PgStore, TestDatabase) {
    let db = fresh_database().await;
    let a = PgStore::connect(db.url(), PgOptions::default())
        .await
        .expect("replica a");
    let b = PgStore::connect(db.url(), PgOptions::default())
        .await
        .expect("replica b");
    (a, b, db)
}

async fn woken<F: std::future::Future<Output = ()>>(what: &str, f: F) {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no wake-up within {WAIT:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_on_one_replica_wakes_for_writes_through_another() {
    let (a, b, _db) = replicas().await;
    let mut list = a.subscribe_list();
    let task = create(&b, new_task("across", &[], None)).await;
    woken("a create on b, followed on a's list", list.changed()).await;
    list.mark_seen();

    let mut sub = a.subscribe(task.id);
    b.append_logs(task.id, &["from b".into()]).await.unwrap();
    woken("a log line on b", sub.changed()).await;
    sub.mark_seen();
    assert_eq!(a.logs(task.id, 0, 10).await.unwrap()[0].line, "from b");

    b.append_events(task.id, &[serde_json::json!({"type": "x"})])
        .await
        .unwrap();
    woken("an event on b", sub.changed()).await;
    sub.mark_seen();
    advance(&b, task.id, &[TaskStatus::Starting]).await;
    woken("a status change on b, per task", sub.changed()).await;
    woken("a status change on b, on the list", list.changed()).await;
    sub.mark_seen();
    list.mark_seen();
    // Output does not wake the list: the next list wake-up is the cancel below, and by then
    // the output's notification (sent first, on the same channel) has been handled.
    b.append_logs(task.id, &["more".into()]).await.unwrap();
    woken("more output on b", sub.changed()).await;
    assert!(!list.has_changed(), "output on b woke a's list");
    b.request_cancel(task.id).await.unwrap();
    woken("a cancel flag on b", list.changed()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_comes_back_after_its_connection_is_killed() {
    let (a, b, db) = replicas().await;
    let task = create(&b, new_task("killed", &[], None)).await;
    let mut sub = a.subscribe(task.id);
    let mut list = a.subscribe_list();
    let killed = db
        .terminate_connections(Some(LISTENER_APPLICATION_NAME))
        .await;
    assert_eq!(killed, 2, "one listener per replica");
    // Notifications may have been missed meanwhile: every follower is woken once.
    woken("the reconnect, per task", sub.changed()).await;
    woken("the reconnect, on the list", list.changed()).await;
    sub.mark_seen();
    list.mark_seen();
    b.append_logs(task.id, &["after".into()]).await.unwrap();
    woken("a write on b after the reconnect", sub.changed()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_survive_the_server_killing_their_connections() {
    let (a, _b, db) = replicas().await;
    let task = create(&a, new_task("before", &[], None)).await;
    for round in 0..3 {
        let killed = db.terminate_connections(Some(APPLICATION_NAME)).await;
        assert!(killed >= 1, "round {round}: the pools had connections");
        // Reads, writes in a transaction, and single-statement writes all go through.
        assert_eq!(a.get(task.id).await.unwrap().unwrap().id, task.id);
        a.append_logs(task.id, &[format!("round {round}")])
            .await
            .unwrap();
        create(&a, new_task(&format!("after {round}"), &[], None)).await;
        a.ping().await.unwrap();
    }
    assert_eq!(a.log_count(task.id).await.unwrap(), 3);
}
