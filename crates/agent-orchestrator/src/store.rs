//! Which task store `serve` runs on, from `--database-url`: SQLite in the data directory by
//! default (one process), or PostgreSQL, where several replicas may share the tasks and elect
//! the one that runs the scheduler ([`ao_core::lease`]).

use std::sync::Arc;

use anyhow::{Context, bail};
use ao_core::lease::LeaseStore;
use ao_core::store::TaskStore;
use ao_store_postgres::{PgOptions, PgStore};
use ao_store_sqlite::SqliteStore;

use crate::config::{RuntimeKind, ServeArgs};

/// The opened store, and its leases when replicas can share it.
pub struct OpenedStore {
    pub tasks: Arc<dyn TaskStore>,
    /// `Some` for PostgreSQL: this process runs the scheduler only while it holds the lease.
    pub leases: Option<Arc<dyn LeaseStore>>,
}

pub async fn open(args: &ServeArgs) -> anyhow::Result<OpenedStore> {
    let local_workers_apart = args.runtime == RuntimeKind::Local && args.worker_user.is_some();
    crate::datadir::prepare(&args.data_dir, local_workers_apart)?;
    let url = args.database_url.as_deref();
    match url.map(scheme) {
        Some("postgres" | "postgresql") => {
            let url = url.unwrap_or_default();
            // A replica frozen mid-write loses its session (and its locks) well within the
            // lease, so it can never hold up a takeover.
            let lease = std::time::Duration::from_secs(args.leader_lease_seconds);
            let options = PgOptions {
                idle_in_transaction_timeout: lease / 2,
                ..PgOptions::default()
            };
            let store = PgStore::connect(url, options)
                .await
                .context("opening the task store (PostgreSQL)")?;
            let store = Arc::new(store);
            Ok(OpenedStore {
                tasks: store.clone(),
                leases: Some(store),
            })
        }
        Some("sqlite") => {
            let store = SqliteStore::open_url(url.unwrap_or_default())
                .await
                .context("opening the task store (SQLite)")?;
            Ok(sole(store))
        }
        Some(other) => bail!(
            "unsupported database URL scheme `{other}`: use sqlite:… (the default) or postgres://…"
        ),
        None => {
            let store = SqliteStore::open(&args.data_dir.join("orchestrator.db"))
                .await
                .context("opening the task store (SQLite)")?;
            Ok(sole(store))
        }
    }
}

fn sole(store: SqliteStore) -> OpenedStore {
    OpenedStore {
        tasks: Arc::new(store),
        leases: None,
    }
}

/// The URL's scheme, never more of it (the rest may hold a password).
fn scheme(url: &str) -> &str {
    url.split_once(':').map_or("", |(s, _)| s)
}

#[cfg(test)]
mod tests {
    use super::scheme;

    #[test]
    fn only_the_scheme_is_taken() {
        assert_eq!(scheme("postgres://u:secret@h/db"), "postgres");
        assert_eq!(scheme("sqlite:/x.db"), "sqlite");
        assert_eq!(scheme("nonsense"), "");
    }
}
