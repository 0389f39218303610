//! SQLite implementation of [`ao_core::store::TaskStore`]: the embedded default, so one
//! command starts the orchestrator with durable state and nothing else to install.
//!
//! Every write is atomic in SQL on its own (see the contract in [`ao_core::store`]): status
//! compare-and-set as `UPDATE .. WHERE status = ? RETURNING`, the queue bound as a counter
//! row reserved in the insert's transaction, sequence numbers from per-task counters. Write
//! transactions start with `BEGIN IMMEDIATE`, so they take SQLite's write lock up front and
//! wait for it (busy timeout) rather than failing half-way. Correctness therefore does not
//! depend on the number of writer connections: the default is one (SQLite serializes writers
//! anyway, and one connection avoids lock waits), and the conformance suite also runs with
//! several. Reads use a small read-only pool. The database runs in WAL mode; accepting a task and settling one commit with
//! `synchronous=FULL`, so an accepted task and a terminal status survive a crash of the process
//! or of the machine (the moves in between need not, see `durable`).
//!
//! Queries are checked at run time (not with compile-time macros) and are all static text
//! with bound parameters.

mod durable;
mod files;
mod output;
mod read;
mod row;
mod store;
mod write;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use ao_core::store::{ChangeFeed, StoreError, StoreResult};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Sqlite, SqlitePool, Transaction};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connection counts of a [`SqliteStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connections {
    /// Writer connections. One is the right choice for SQLite; more exist to prove that the
    /// store stays correct with concurrent writers (the conformance suite runs both).
    pub writers: u32,
    /// Read-only connections.
    pub readers: u32,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            writers: 1,
            readers: 4,
        }
    }
}

/// The SQLite task store.
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    changes: ChangeFeed,
}

fn options(opts: SqliteConnectOptions) -> SqliteConnectOptions {
    opts.create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
}

impl SqliteStore {
    /// Open (and create, and migrate) the database file at `path`.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        Self::open_with(path, Connections::default()).await
    }

    /// [`SqliteStore::open`] with chosen connection counts.
    pub async fn open_with(path: &Path, connections: Connections) -> StoreResult<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(StoreError::backend)?;
        }
        files::make_private(path).map_err(StoreError::backend)?;
        let opts = options(SqliteConnectOptions::new().filename(path));
        Self::connect(opts, connections).await
    }

    /// Open from a `sqlite://` URL.
    pub async fn open_url(url: &str) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::from_str(url).map_err(StoreError::backend)?;
        Self::connect(options(opts), Connections::default()).await
    }

    async fn connect(opts: SqliteConnectOptions, connections: Connections) -> StoreResult<Self> {
        let writer = SqlitePoolOptions::new()
            .max_connections(connections.writers.max(1))
            // Each write chooses whether it waits for the disk (see `durable`).
            .connect_with(opts.clone().synchronous(SqliteSynchronous::Normal))
            .await
            .map_err(StoreError::backend)?;
        MIGRATOR.run(&writer).await.map_err(StoreError::backend)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(connections.readers.max(1))
            .connect_with(opts.read_only(true))
            .await
            .map_err(StoreError::backend)?;
        Ok(SqliteStore {
            writer,
            reader,
            changes: ChangeFeed::default(),
        })
    }

    /// A writer connection set up to commit durably or not (see `durable`). Begin the write
    /// transaction on it with [`begin_write`].
    pub(crate) async fn write_conn(&self, durable: bool) -> StoreResult<PoolConnection<Sqlite>> {
        durable::writer(&self.writer, durable).await
    }
}

/// A write transaction holding SQLite's write lock from its first statement.
pub(crate) async fn begin_write(
    conn: &mut PoolConnection<Sqlite>,
) -> StoreResult<Transaction<'_, Sqlite>> {
    conn.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)
}

pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    StoreError::backend(e)
}
