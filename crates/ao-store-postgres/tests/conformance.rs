//! The store and lease conformance suites from `ao_core::store::conformance`, run on
//! PostgreSQL: every case on a fresh database of the test server (`scripts/postgres-test.sh`),
//! with the default pool of 16 connections, so that the concurrent cases race inside the
//! database.

use std::sync::Arc;

use ao_core::lease::LeaseStore;
use ao_core::store::TaskStore;
use ao_store_postgres::{PgOptions, PgStore};
use ao_testkit::postgres::{TestDatabase, fresh_database};

async fn store() -> (PgStore, TestDatabase) {
    let db = fresh_database().await;
    let store = PgStore::connect(db.url(), PgOptions::default())
        .await
        .expect("connect to the test database");
    (store, db)
}

async fn open() -> (Arc<dyn TaskStore>, TestDatabase) {
    let (store, db) = store().await;
    (Arc::new(store), db)
}

async fn open_with_leases() -> (Arc<dyn TaskStore>, Arc<dyn LeaseStore>, TestDatabase) {
    let (store, db) = store().await;
    (Arc::new(store.clone()), Arc::new(store), db)
}

mod tasks {
    ao_core::store_conformance_suite!(super::open);
}

mod leases {
    ao_core::lease_conformance_suite!(super::open_with_leases);
}
