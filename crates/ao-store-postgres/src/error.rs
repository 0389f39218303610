//! Query errors, and which of them are worth another try.
//!
//! A replica loses its connections when the database restarts, fails over, or a proxy or
//! an administrator drops them; the next query on such a connection fails at once. Those
//! failures are retried ([`PgStore::retrying`], with the codebase's one retry policy,
//! [`ao_core::retry`]) when a retry cannot apply a write twice:
//! - a statement that failed inside a transaction rolled the transaction back (nothing was
//!   written), so the whole operation may run again: its errors are [`PgError::Query`];
//! - a failed `COMMIT` may have been applied or not: [`PgError::Commit`], never retried;
//! - operations outside a transaction are single statements that are idempotent (setting a
//!   result, a token hash, the cancel flag, a lease grant or release), safe to repeat.
//!
//! Everything else (a constraint, a bad row) is surfaced at once as
//! [`StoreError::Backend`] with its cause.

use std::future::Future;
use std::sync::Arc;

use ao_core::retry::{Retry, RetryPolicy};
use ao_core::store::{StoreError, StoreResult};
use tracing::warn;

use crate::PgStore;

/// A failure from the database, kept as the source of [`StoreError::Backend`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum PgError {
    /// A statement failed; its transaction (if any) did not commit.
    #[error(transparent)]
    Query(sqlx::Error),
    /// The commit failed: the write may or may not have been applied.
    #[error("commit failed, the write may or may not have been applied: {0}")]
    Commit(sqlx::Error),
    /// The admission batch this create was part of failed as a whole (see `admit`).
    #[error("admission batch of {size} creates failed: {source}")]
    Batch {
        size: usize,
        #[source]
        source: Arc<StoreError>,
    },
    /// Creates kept losing idempotency-key races to writers outside the admission protocol
    /// (see `batch`).
    #[error("creates lost {0} idempotency-key races in a row")]
    KeyRaces(usize),
    /// The admission task is gone (it stops only when its store is dropped).
    #[error("the admission task has stopped")]
    AdmissionStopped,
}

pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    StoreError::backend(PgError::Query(e))
}

pub(crate) fn commit_err(e: sqlx::Error) -> StoreError {
    StoreError::backend(PgError::Commit(e))
}

/// SQLSTATEs after which the same statement can succeed on another connection or a moment
/// later: connection exceptions (class 08), the server shutting down or starting
/// (57P01-57P03), too many connections, and the two conflicts PostgreSQL resolves by
/// aborting one transaction (serialization failure, deadlock).
const TRANSIENT_STATES: [&str; 6] = ["57P01", "57P02", "57P03", "53300", "40001", "40P01"];

/// Whether `e` is a passing failure of the connection or the server.
pub(crate) fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || TRANSIENT_STATES.contains(&c.as_ref())),
        _ => false,
    }
}

/// The retry verdict for a store error (see the module docs).
pub(crate) fn classify(e: &StoreError) -> Retry {
    let StoreError::Backend(b) = e else {
        return Retry::No;
    };
    match b.downcast_ref::<PgError>() {
        Some(PgError::Query(q)) if is_transient(q) => Retry::Backoff,
        _ => Retry::No,
    }
}

/// The SQLSTATE of a database error, if it is one.
pub(crate) fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Whether a failed admission batch failed for every create in it alike: its commit failed
/// (which may have applied it), or the connection stayed down through the retries. Any other
/// failure may be one create's doing (a value the database refuses), and the batch is split.
pub(crate) fn fails_whole_batch(e: &StoreError) -> bool {
    let StoreError::Backend(b) = e else {
        return false;
    };
    match b.downcast_ref::<PgError>() {
        Some(PgError::Commit(_)) => true,
        Some(PgError::Query(q)) => is_transient(q),
        _ => false,
    }
}

/// Run `op` under `policy` until it succeeds, fails for good, or the tries run out (see the
/// module docs for which failures are retried). `what` names the operation in the log.
pub(crate) async fn retrying<T, F, Fut>(
    policy: &RetryPolicy,
    what: &'static str,
    op: F,
) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    policy
        .run(op, classify, |e, wait| {
            warn!(
                operation = what,
                error = %e,
                retry_in_ms = wait.as_millis() as u64,
                "database call failed; retrying"
            );
        })
        .await
}

impl PgStore {
    /// [`retrying`] under this store's policy.
    pub(crate) async fn retrying<T, F, Fut>(&self, what: &'static str, op: F) -> StoreResult<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = StoreResult<T>>,
    {
        retrying(&self.retry, what, op).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_retried_and_logic_errors_are_not() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(classify(&db_err(io)), Retry::Backoff);
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert_eq!(
            classify(&commit_err(io)),
            Retry::No,
            "a commit is ambiguous"
        );
        assert_eq!(classify(&db_err(sqlx::Error::RowNotFound)), Retry::No);
        assert_eq!(classify(&StoreError::NotFound), Retry::No);
        assert_eq!(classify(&db_err(sqlx::Error::PoolTimedOut)), Retry::No);
    }
}
