//! [`LeaseStore`] on the task database, and why the fence on transitions is sound.
//!
//! # Acquire: one statement
//!
//! `INSERT .. ON CONFLICT (name) DO UPDATE .. WHERE` grants a free lease, renews the holder's
//! own, or takes over a lapsed one, and changes nothing otherwise; the `WHERE` is evaluated
//! on the row as it stands under the statement's row lock, so of any number of racing
//! replicas exactly one wins a lapsed lease. The generation is kept by a renewal and bumped
//! by every change of hands, including a holder taking back its own lease after it lapsed
//! (it stepped down meanwhile, so its old fence must not come back to life). A renewal that
//! comes after someone else took the lease is refused: the row's holder is no longer ours.
//!
//! Expiry is judged by the database's clock, read once per statement (`clock_timestamp()` in
//! a CTE) so that every decision in it and the `now` it returns agree. The reading is taken
//! before the statement waits for any row lock, so it can only be early: a take-over happens
//! no sooner than the expiry really passed, and a granted expiry is no later than "now + ttl"
//! as the holder measures it from before its call (what its elector's step-down relies on).
//!
//! # The fence
//!
//! A fenced transition (`write`) first runs `SELECT 1 FROM leases WHERE name = 'scheduler'
//! AND generation = $fence FOR SHARE` in its transaction, and writes only if that returns the
//! row. Under READ COMMITTED:
//! - If a hand-over (an `acquire` that bumps the generation) committed before, the `SELECT`
//!   sees the new generation and the write is refused with `Fenced`.
//! - If the hand-over is in flight, it holds the row's update lock; `FOR SHARE` waits for it,
//!   then re-checks the updated row, sees the new generation, and refuses.
//! - If the check passes, the share lock is held until the write commits, and a hand-over
//!   needs the row's update lock, which conflicts with it: the hand-over waits, so it commits
//!   after the write. Every write under generation `g` therefore commits before generation
//!   `g + 1` exists, and none after.
//!
//! A renewal also takes the update lock, so fenced writes and renewals briefly wait on each
//! other; that is one short statement every few seconds.

use std::time::Duration;

use ao_core::lease::{Fence, Lease, LeaseStore};
use ao_core::store::StoreResult;
use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;
use tracing::instrument;

use crate::PgStore;
use crate::error::db_err;

/// `$1` name, `$2` holder, `$3` ttl in microseconds.
const ACQUIRE: &str = "\
WITH clock AS (SELECT clock_timestamp() AS now), \
granted AS ( \
  INSERT INTO leases AS l (name, holder, generation, expires_at) \
  SELECT $1, $2, 1, clock.now + $3 * interval '1 microsecond' FROM clock \
  ON CONFLICT (name) DO UPDATE SET \
    holder = EXCLUDED.holder, \
    generation = CASE WHEN l.holder = EXCLUDED.holder \
                       AND l.expires_at > EXCLUDED.expires_at - $3 * interval '1 microsecond' \
                      THEN l.generation ELSE l.generation + 1 END, \
    expires_at = EXCLUDED.expires_at \
  WHERE l.holder = EXCLUDED.holder \
     OR l.expires_at <= EXCLUDED.expires_at - $3 * interval '1 microsecond' \
  RETURNING l.name, l.holder, l.generation, l.expires_at) \
SELECT granted.name, granted.holder, granted.generation, granted.expires_at, clock.now \
FROM granted, clock";

/// The lease as it stands, for an `acquire` that was refused.
const CURRENT: &str = "SELECT name, holder, generation, expires_at, clock_timestamp() AS now \
                       FROM leases WHERE name = $1";

fn lease(row: &PgRow) -> StoreResult<Lease> {
    Ok(Lease {
        name: row.try_get("name").map_err(db_err)?,
        holder: row.try_get("holder").map_err(db_err)?,
        generation: Fence(row.try_get("generation").map_err(db_err)?),
        expires_at: row.try_get("expires_at").map_err(db_err)?,
        now: row.try_get("now").map_err(db_err)?,
    })
}

impl PgStore {
    async fn acquire_once(&self, name: &str, holder: &str, ttl_us: i64) -> StoreResult<Lease> {
        let granted = sqlx::query(ACQUIRE)
            .bind(name)
            .bind(holder)
            .bind(ttl_us)
            .fetch_optional(&self.lease_pool)
            .await
            .map_err(db_err)?;
        if let Some(row) = granted {
            return lease(&row);
        }
        // Refused: someone else holds it. Read it in a statement of its own, whose snapshot
        // includes a holder that committed while the first one waited.
        let row = sqlx::query(CURRENT)
            .bind(name)
            .fetch_one(&self.lease_pool)
            .await
            .map_err(db_err)?;
        lease(&row)
    }
}

#[async_trait]
impl LeaseStore for PgStore {
    /// Idempotent for its holder (a repeat renews and keeps the generation), so a call that
    /// lost its connection is tried again.
    #[instrument(skip_all, fields(lease = name, holder))]
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<Lease> {
        // At least a microsecond, at most ten years (far inside what an interval holds).
        let ttl = ttl.clamp(
            Duration::from_micros(1),
            Duration::from_secs(10 * 365 * 86_400),
        );
        let ttl_us = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
        self.retrying("lease_acquire", || self.acquire_once(name, holder, ttl_us))
            .await
    }

    #[instrument(skip_all, fields(lease = name, holder, generation = generation.0))]
    async fn release(&self, name: &str, holder: &str, generation: Fence) -> StoreResult<()> {
        self.retrying("lease_release", || async {
            sqlx::query(
                "UPDATE leases SET expires_at = clock_timestamp() \
                 WHERE name = $1 AND holder = $2 AND generation = $3",
            )
            .bind(name)
            .bind(holder)
            .bind(generation.0)
            .execute(&self.lease_pool)
            .await
            .map_err(db_err)
        })
        .await?;
        Ok(())
    }
}
