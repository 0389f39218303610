//! Leadership among replicas that share one database: which replica runs the scheduler.
//!
//! Every replica serves the whole API; exactly one at a time launches, stops, adopts and
//! collects workers. It holds a **lease**: a row in the task database (name, holder,
//! generation, expiry) that a [`LeaseStore`] grants, renews and hands over. The expiry is
//! judged by the database's clock, so replicas with skewed clocks still agree on it.
//!
//! The lease's **generation** is a fencing token. It grows by one each time the lease
//! changes hands. The scheduler stamps it on every status change it writes
//! ([`crate::store::Transition::fence`]), and the store applies the change only while that
//! generation is still the current one, in the same statement as the compare-and-set. A
//! deposed leader that wakes up late (a long GC pause, a partition that heals) therefore
//! cannot move a task: its write is refused with [`crate::store::StoreError::Fenced`].
//!
//! Why a database row and not a Kubernetes Lease: the fence has to be checked atomically with
//! the write it guards, and only the database that holds the tasks can do that. A Kubernetes
//! Lease would elect a leader but leave its late writes unfenced, and it would only exist on
//! the Kubernetes runtime. The row works for every runtime and costs one small write per
//! renewal.
//!
//! [`Elector`] is the loop that keeps (or seeks) the lease and tells the scheduler when this
//! replica leads; it steps down on its own, before the lease can expire in the database, when
//! it cannot renew in time.

mod elector;

pub use elector::{Elector, ElectorConfig, Leadership};

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::store::StoreResult;

/// The lease the scheduler runs under.
pub const SCHEDULER_LEASE: &str = "scheduler";

/// A lease generation, used as a fencing token: larger is newer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Fence(pub i64);

impl std::fmt::Display for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A lease as the database holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    /// Who holds it (a replica's id), or held it last.
    pub holder: String,
    /// Bumped each time the lease changes hands; never reused.
    pub generation: Fence,
    /// When it lapses unless renewed, on the database's clock.
    pub expires_at: DateTime<Utc>,
    /// The database's clock when this answer was made.
    pub now: DateTime<Utc>,
}

impl Lease {
    /// Whether `holder` holds it at the time of this answer.
    pub fn held_by(&self, holder: &str) -> bool {
        self.holder == holder && self.expires_at > self.now
    }
}

/// Leases kept in the task database, so that fenced writes can check them (see the module
/// docs). Backends that support several replicas implement it next to their
/// [`crate::store::TaskStore`].
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Take or renew the lease `name` for `holder` until the database's now plus `ttl`, in
    /// one atomic statement: granted when no one holds it, when it has expired, or when
    /// `holder` holds it already (a renewal keeps the generation; a change of hands bumps
    /// it). Otherwise nothing changes. Returns the lease as it stands afterwards, whoever
    /// holds it.
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<Lease>;

    /// Give the lease up at once if `holder` still holds it at `generation` (a clean shutdown,
    /// so the next replica need not wait for the expiry). A no-op otherwise.
    async fn release(&self, name: &str, holder: &str, generation: Fence) -> StoreResult<()>;
}

#[cfg(test)]
mod tests;
