//! The store conformance suite from `ao_core::store::conformance`, run on SQLite twice: as the
//! orchestrator opens it (one writer, whose batches hold the racing writes of a case side by
//! side in one transaction) and with eight writers, each with its own connection and
//! batches, so that the concurrent cases also race inside SQLite for its write lock and not
//! only in one writer's queue.

use std::sync::Arc;

use ao_core::store::TaskStore;
use ao_store_sqlite::{Connections, SqliteStore};
use tempfile::TempDir;

async fn open(connections: Connections) -> (Arc<dyn TaskStore>, TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open_with(&dir.path().join("t.db"), connections)
        .await
        .expect("open store");
    (Arc::new(store), dir)
}

async fn one_writer() -> (Arc<dyn TaskStore>, TempDir) {
    open(Connections::default()).await
}

async fn many_writers() -> (Arc<dyn TaskStore>, TempDir) {
    open(Connections {
        writers: 8,
        readers: 4,
    })
    .await
}

mod one_writer {
    ao_core::store_conformance_suite!(super::one_writer);
}

mod many_writers {
    ao_core::store_conformance_suite!(super::many_writers);
}
