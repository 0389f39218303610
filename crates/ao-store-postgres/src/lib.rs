//! PostgreSQL implementation of [`ao_core::store::TaskStore`] and [`ao_core::lease::LeaseStore`]:
//! the store for several orchestrator replicas sharing one database (issue "HA control plane
//! on PostgreSQL"). SQLite stays the embedded default (`ao-store-sqlite`); this crate keeps the
//! same semantics, column set and counters, and passes the same conformance suite.
//!
//! Why it is shaped this way:
//! - **Every write is atomic in SQL on its own**, because other replicas write concurrently
//!   and nothing serializes them but the database: status compare-and-set as
//!   `UPDATE .. WHERE status = $from RETURNING`, sequence numbers from per-task counters
//!   bumped with `RETURNING` (see `write` and `output`). Transactions run at PostgreSQL's
//!   default READ COMMITTED; the conditions live in the statements, and row locks order the
//!   racers.
//! - **Creates are batched** (see `admit` and `batch`): concurrent creates share one
//!   transaction, which takes the queue bound's counter row first (so batches of all replicas
//!   apply one after another and see each other's idempotency keys), decides them in arrival
//!   order, and writes them with one statement per table. Other writes stay one transaction
//!   each, on other connections of the pool, so admission does not starve the scheduler.
//! - **Fenced transitions** ([`ao_core::store::Transition::fence`]) check the scheduler
//!   lease's generation under a share lock on the lease row, in the transaction of the write
//!   (see `lease` for why that is sound).
//! - **The change feed crosses processes** with `LISTEN`/`NOTIFY` (see `notify`): each write
//!   sends `pg_notify` in its own transaction, and each store runs one listener that feeds the
//!   process-local [`ao_core::store::ChangeFeed`].
//! - **Connection loss is retried** where a retry cannot apply a write twice (see `error`),
//!   and start-up errors say what is wrong without echoing the password (see `connect`).
//!
//! Queries are checked at run time (`sqlx::query`, not the compile-time macros), are static
//! text with bound parameters, and have the same size whatever their input (label filters
//! are one jsonb containment, batches are arrays).

mod admit;
mod batch;
mod connect;
mod error;
mod lease;
mod notify;
mod output;
mod read;
mod row;
mod store;
mod write;

pub use admit::{AdmissionStats, BATCH_BYTES};
pub use connect::{APPLICATION_NAME, ConnectError, PgOptions, redact_url};
pub use notify::{CHANNEL, LISTENER_APPLICATION_NAME};

use std::sync::Arc;

use ao_core::retry::RetryPolicy;
use ao_core::store::ChangeFeed;
use sqlx::PgPool;

/// The PostgreSQL task store. Cheap to clone; the listener task stops with the last clone.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The lease's own connections: renewals never queue behind API or admission queries,
    /// so a busy pool can't make the leader step down.
    lease_pool: PgPool,
    changes: ChangeFeed,
    /// This store's id in notification payloads: its own writes already woke the local feed,
    /// so the listener skips them (a follower must not see one write twice).
    origin: Arc<str>,
    retry: RetryPolicy,
    /// Where creates go to be batched (see `admit`).
    admission: Arc<admit::Admission>,
    _listener: Arc<notify::ListenerHandle>,
}

impl PgStore {
    /// What admission did since this store opened (batches and their sizes).
    pub fn admission_stats(&self) -> AdmissionStats {
        self.admission.stats()
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}
