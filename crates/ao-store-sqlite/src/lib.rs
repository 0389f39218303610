//! SQLite implementation of [`ao_core::store::TaskStore`]: the embedded default, so one
//! command starts the orchestrator with durable state and nothing else to install.
//!
//! Queries are checked at run time (not with compile-time macros), so a PostgreSQL store can
//! follow behind the same trait. Writes go through a single connection, which serializes them
//! the way SQLite does anyway and avoids busy errors; reads use a small pool. The database
//! runs in WAL mode; accepting a task and settling one commit with `synchronous=FULL`, so an
//! accepted task and a terminal status survive a crash of the process or of the machine (the
//! moves in between need not, see `durable`).

mod durable;
mod files;
mod output;
mod row;
mod tasks;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use ao_core::store::{ChangeFeed, StoreError, StoreResult};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The SQLite task store.
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    changes: ChangeFeed,
}

impl SqliteStore {
    /// Open (and create, and migrate) the database file at `path`.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(StoreError::backend)?;
        }
        files::make_private(path).map_err(StoreError::backend)?;
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        Self::connect(opts).await
    }

    /// Open from a `sqlite://` URL.
    pub async fn open_url(url: &str) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(StoreError::backend)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        Self::connect(opts).await
    }

    async fn connect(opts: SqliteConnectOptions) -> StoreResult<Self> {
        // Each write chooses whether it waits for the disk (see `durable`).
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone().synchronous(SqliteSynchronous::Normal))
            .await
            .map_err(StoreError::backend)?;
        MIGRATOR.run(&writer).await.map_err(StoreError::backend)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await
            .map_err(StoreError::backend)?;
        Ok(SqliteStore {
            writer,
            reader,
            changes: ChangeFeed::default(),
        })
    }
}

pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    StoreError::backend(e)
}

#[cfg(test)]
mod tests;
