//! Opening a [`PgStore`]: options, the connection pool, migrations, and start-up errors that
//! say what is wrong.
//!
//! A replica that cannot reach its database must say why at start-up, in words an operator
//! can act on: a malformed URL, a server that is not there, a password it refused, a database
//! that does not exist. So the store first opens one connection by itself (a pool would
//! retry a refused connection until its timeout and report only that it timed out),
//! classifies the failure into a [`ConnectError`], and only then builds the pool. No message
//! built here contains the password: URLs are shown through [`redact_url`].

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ao_core::retry::RetryPolicy;
use ao_core::store::ChangeFeed;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

use crate::admit::Admission;
use crate::error::sqlstate;
use crate::{PgStore, notify};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The `application_name` of the store's pool connections (visible in `pg_stat_activity`).
pub const APPLICATION_NAME: &str = "agent-orchestrator";

/// How a [`PgStore`] uses the database.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Pool size. The default, 16: admission needs one connection (one batch in flight per
    /// replica, however many callers), and the rest serve what runs concurrently besides, each
    /// one short transaction: the scheduler's transitions, output appended by every running
    /// worker, and reads (task pages, followers re-reading after a wake-up). Those writes
    /// commit together where PostgreSQL's group commit can share a flush, so a few more than
    /// the cores pay off; many more would only queue inside the server. Every replica opens
    /// its own pool (plus one listener connection), so `replicas * (max_connections + 1)`
    /// must stay under the server's `max_connections`.
    pub max_connections: u32,
    /// The most creates applied in one transaction (see `admit`); 1 makes every create its
    /// own transaction. The default, 256, is more than the concurrent callers of a replica
    /// usually are, so a batch takes everything that waits.
    pub admission_batch: usize,
    /// How long a query waits for a free pooled connection (or a new one) before it fails.
    pub acquire_timeout: Duration,
    /// How long start-up waits for the first connection.
    pub connect_timeout: Duration,
    /// Retries of calls that failed on a lost connection (see `error`).
    pub retry: RetryPolicy,
    /// The server ends a session that sits in an open transaction this long
    /// (`idle_in_transaction_session_timeout`): a replica frozen mid-write (SIGSTOP, a
    /// partition, a dead node) would otherwise hold its row locks, the lease row's share lock
    /// among them, until TCP gives up (hours), and no replica could take the lease over.
    /// Keep it well under the lease; `serve` uses half of it.
    pub idle_in_transaction_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 16,
            admission_batch: 256,
            acquire_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            idle_in_transaction_timeout: Duration::from_secs(5),
        }
    }
}

/// Why a [`PgStore`] could not start. Each names the server (never the password) and keeps
/// the driver's error as its source.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid PostgreSQL URL {url} (percent-encode @ / : ? # % in the password)")]
    InvalidUrl {
        /// The URL with its password replaced.
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot reach the PostgreSQL server at {host}:{port}")]
    Unreachable {
        host: String,
        port: u16,
        #[source]
        source: sqlx::Error,
    },
    /// The TLS handshake failed: the server's certificate could not be verified (check
    /// `sslrootcert` and the host name with `sslmode=verify-full`), or the server offers no TLS
    /// for `sslmode=require`.
    #[error(
        "TLS with the PostgreSQL server at {host}:{port} failed (check sslmode and sslrootcert)"
    )]
    Tls {
        host: String,
        port: u16,
        #[source]
        source: sqlx::Error,
    },
    #[error("no answer from the PostgreSQL server at {host}:{port} within {timeout:?}")]
    Timeout {
        host: String,
        port: u16,
        timeout: Duration,
    },
    #[error("the PostgreSQL server at {host}:{port} refused the credentials of user {user:?}")]
    Authentication {
        host: String,
        port: u16,
        user: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("database {database:?} does not exist on the PostgreSQL server at {host}:{port}")]
    UnknownDatabase {
        host: String,
        port: u16,
        database: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot connect to the PostgreSQL server at {host}:{port}")]
    Other {
        host: String,
        port: u16,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot bring the database schema up to date")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// `url` with the password (in the user info or a `password=` parameter) replaced by `***`,
/// for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return mask_params(url);
    };
    // The user info ends at the last '@': a password may hold '/', '?', '#' or ':' that its
    // writer forgot to percent-encode, and masking too much is better than showing one.
    let (info, after) = match rest.rfind('@') {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    let info = info.map(|i| match i.split_once(':') {
        Some((user, _)) => format!("{user}:***@"),
        None => format!("{i}@"),
    });
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (host, tail) = after.split_at(end);
    format!(
        "{scheme}://{}{host}{}",
        info.unwrap_or_default(),
        mask_params(tail)
    )
}

/// `password=` parameters of a query string replaced by `***`.
fn mask_params(s: &str) -> String {
    let Some((before, query)) = s.split_once('?') else {
        return s.to_string();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => p.to_string(),
        })
        .collect();
    format!("{before}?{}", params.join("&"))
}

/// Settings of every session the store opens: the idle-in-transaction limit, and TCP
/// keepalives on the server's side, so a client that vanished without closing its socket is
/// noticed in about 20 s rather than the kernel's two hours.
fn session_settings(options: &PgOptions) -> Vec<(&'static str, String)> {
    let idle = options.idle_in_transaction_timeout.as_millis().max(1);
    vec![
        ("idle_in_transaction_session_timeout", idle.to_string()),
        ("tcp_keepalives_idle", "10".to_string()),
        ("tcp_keepalives_interval", "5".to_string()),
        ("tcp_keepalives_count", "2".to_string()),
    ]
}

/// Classify a failed first connection.
fn classify(opts: &PgConnectOptions, source: sqlx::Error) -> ConnectError {
    let host = opts.get_host().to_string();
    let port = opts.get_port();
    match (&source, sqlstate(&source).as_deref()) {
        (sqlx::Error::Tls(_), _) => ConnectError::Tls { host, port, source },
        // rustls reports a certificate it can't verify as invalid data on the stream.
        (sqlx::Error::Io(e), _) if e.kind() == std::io::ErrorKind::InvalidData => {
            ConnectError::Tls { host, port, source }
        }
        (sqlx::Error::Io(_), _) => ConnectError::Unreachable { host, port, source },
        // invalid_password, invalid_authorization_specification
        (_, Some("28P01" | "28000")) => ConnectError::Authentication {
            host,
            port,
            user: opts.get_username().to_string(),
            source,
        },
        (_, Some("3D000")) => ConnectError::UnknownDatabase {
            host,
            port,
            database: opts
                .get_database()
                .unwrap_or(opts.get_username())
                .to_string(),
            source,
        },
        _ => ConnectError::Other { host, port, source },
    }
}

impl PgStore {
    /// Connect to the database at `url` (`postgres://user:password@host:port/database`),
    /// bring its schema up to date (migrations take an advisory lock, so replicas starting
    /// together are safe), and start the change-feed listener.
    pub async fn connect(url: &str, options: PgOptions) -> Result<PgStore, ConnectError> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|source| ConnectError::InvalidUrl {
                url: redact_url(url),
                source,
            })?
            .application_name(APPLICATION_NAME)
            .options(session_settings(&options));
        // One connection by itself first, for an error that says what is wrong.
        let first = tokio::time::timeout(options.connect_timeout, opts.connect())
            .await
            .map_err(|_| ConnectError::Timeout {
                host: opts.get_host().to_string(),
                port: opts.get_port(),
                timeout: options.connect_timeout,
            })?
            .map_err(|e| classify(&opts, e))?;
        // Closing is a courtesy to the server; a failure here changes nothing.
        let _ = first.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            // No ping before each query (a round trip per call): a connection the server
            // dropped fails its query, which is retried on another (see `error`).
            .test_before_acquire(false)
            .connect_lazy_with(opts.clone());
        let lease_pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(options.acquire_timeout)
            .test_before_acquire(false)
            .connect_lazy_with(opts.clone());
        MIGRATOR.run(&pool).await.map_err(ConnectError::Migrate)?;
        let changes = ChangeFeed::default();
        let origin: Arc<str> = uuid::Uuid::now_v7().simple().to_string().into();
        let listener = notify::start(&opts, changes.clone(), origin.clone())
            .await
            .map_err(|e| classify(&opts, e))?;
        let admission = Admission::start(
            pool.clone(),
            changes.clone(),
            origin.clone(),
            options.retry,
            options.admission_batch,
        );
        Ok(PgStore {
            pool,
            lease_pool,
            changes,
            origin,
            retry: options.retry,
            admission: Arc::new(admission),
            _listener: Arc::new(listener),
        })
    }

    /// The connection pool (for tests and tools that inspect the database).
    pub fn pool(&self) -> &sqlx::PgPool {
        &self.pool
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_show() {
        let cases = [
            (
                "postgres://ao:s3cr:et@db:5432/tasks",
                "postgres://ao:***@db:5432/tasks",
            ),
            ("postgres://ao@db/tasks", "postgres://ao@db/tasks"),
            ("postgresql://db/tasks", "postgresql://db/tasks"),
            (
                "postgres://db/tasks?user=ao&password=hunter2&sslmode=require",
                "postgres://db/tasks?user=ao&password=***&sslmode=require",
            ),
            (
                "postgres://ao:p%40ss@db?PASSWORD=x",
                "postgres://ao:***@db?PASSWORD=***",
            ),
            ("postgres://ao:a/b@db/t", "postgres://ao:***@db/t"),
            (
                "postgres://orchestrator:s3cr?et-pw@127.0.0.1:5432/orchestrator",
                "postgres://orchestrator:***@127.0.0.1:5432/orchestrator",
            ),
            (
                "postgres://ao:x#y@db/t?sslmode=require",
                "postgres://ao:***@db/t?sslmode=require",
            ),
            ("not a url", "not a url"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }
}
