//! SQLite implementation of [`ao_core::store::TaskStore`]: the embedded default, so one
//! command starts the orchestrator with durable state and nothing else to install.
//!
//! Every write is atomic in SQL on its own (see the contract in [`ao_core::store`]): status
//! compare-and-set as `UPDATE .. WHERE status = ? RETURNING`, the queue bound as a counter
//! row reserved in the insert's transaction, sequence numbers from per-task counters.
//! Writes go through a writer task (`writer`) that commits concurrent writes together (group
//! commit): one `BEGIN IMMEDIATE` transaction per batch, one savepoint per write, so each
//! write keeps its own outcome and a batch of submissions costs one fsync. Correctness does
//! not depend on the number of writers: the default is one (SQLite serializes writers
//! anyway, and one writer makes the largest batches), and the conformance suite also runs
//! with several, whose transactions race for the write lock. Reads use a small read-only
//! pool. The database runs in WAL mode; accepting a task and settling one commit with
//! `synchronous=FULL` before they are answered, so an accepted task and a terminal status
//! survive a crash of the process or of the machine (the moves in between need not, see
//! `durable`).
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
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use ao_core::store::{ChangeFeed, StoreError, StoreResult};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection, SqlitePool};

use writer::Writer;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Connection counts of a [`SqliteStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connections {
    /// Writer tasks, each with its own connection and its own batches (see the `writer`
    /// module); writes are dealt to them in turn. One is the right choice for SQLite: it
    /// makes the largest batches and never waits for the write lock. More exist to prove
    /// that the store stays correct when transactions of several connections race (the
    /// conformance suite runs both).
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
    writer: Writer,
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
        // Each batch chooses whether it waits for the disk (see `durable`).
        let write_opts = opts.clone().synchronous(SqliteSynchronous::Normal);
        let mut conns = Vec::new();
        for _ in 0..connections.writers.max(1) {
            let conn = SqliteConnection::connect_with(&write_opts)
                .await
                .map_err(db_err)?;
            conns.push(conn);
        }
        MIGRATOR
            .run(&mut conns[0])
            .await
            .map_err(StoreError::backend)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(connections.readers.max(1))
            .connect_with(opts.read_only(true))
            .await
            .map_err(StoreError::backend)?;
        let changes = ChangeFeed::default();
        Ok(SqliteStore {
            writer: Writer::start(write_opts, conns, changes.clone()),
            reader,
            changes,
        })
    }
}

pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    StoreError::backend(e)
}
