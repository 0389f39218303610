//! A fresh PostgreSQL database per test, on the server `scripts/postgres-test.sh start` runs.
//!
//! Tests of the PostgreSQL store run against a real server (never a stand-in), and each gets
//! a database of its own so that they can run in parallel and leave nothing behind:
//! [`fresh_database`] creates one with a unique name and returns a [`TestDatabase`] guard
//! that drops it (`WITH (FORCE)`, closing what is still connected) when the test ends.
//!
//! The server's admin URL comes from `AO_TEST_DATABASE_URL` (what `scripts/test.sh` exports),
//! else from the URL file the script writes. Without a server the test panics with the
//! command to start one: these tests never skip.

use std::path::PathBuf;

use sqlx::{AssertSqlSafe, Connection, Executor, PgConnection};

/// The variable holding the test server's admin URL.
pub const URL_ENV: &str = "AO_TEST_DATABASE_URL";

const HOW: &str = "start the test server with `scripts/postgres-test.sh start` \
                   (and `eval \"$(scripts/postgres-test.sh env)\"`)";

/// The admin URL of the test server.
pub fn admin_url() -> String {
    if let Ok(url) = std::env::var(URL_ENV)
        && !url.trim().is_empty()
    {
        return url.trim().to_string();
    }
    let file = state_dir().join("url");
    match std::fs::read_to_string(&file) {
        Ok(url) if !url.trim().is_empty() => url.trim().to_string(),
        _ => panic!(
            "no PostgreSQL test server: {URL_ENV} is not set and {} does not exist; {HOW}",
            file.display()
        ),
    }
}

/// The CA certificate that signed the test server's TLS certificate (for `localhost` and
/// `127.0.0.1`): `AO_TEST_DATABASE_CA`, else the copy the script keeps next to the URL file.
pub fn ca_file() -> PathBuf {
    let file = std::env::var_os("AO_TEST_DATABASE_CA")
        .map(PathBuf::from)
        .unwrap_or_else(|| state_dir().join("ca.crt"));
    assert!(
        file.is_file(),
        "no CA file for the PostgreSQL test server at {}; {HOW}",
        file.display()
    );
    file
}

fn state_dir() -> PathBuf {
    match std::env::var_os("AO_PGTEST_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.pgtest"),
    }
}

/// `url` with its database (the path) replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let start = base.find("://").map_or(0, |i| i + 3);
    let from = base[start..].rfind('@').map_or(start, |i| start + i);
    let end = base[from..].find('/').map_or(base.len(), |i| from + i);
    let mut out = format!("{}/{name}", &base[..end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A database that exists until this guard is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin: String,
}

async fn admin_connection(admin: &str) -> PgConnection {
    PgConnection::connect(admin).await.unwrap_or_else(|e| {
        panic!("the PostgreSQL test server does not answer ({e}); {HOW}");
    })
}

/// Create a database with a unique name on the test server.
pub async fn fresh_database() -> TestDatabase {
    let admin = admin_url();
    let name = format!("ao_test_{}", uuid::Uuid::now_v7().simple());
    let mut conn = admin_connection(&admin).await;
    conn.execute(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
    let _ = conn.close().await;
    TestDatabase {
        url: with_database(&admin, &name),
        name,
        admin,
    }
}

impl TestDatabase {
    /// The URL of this database (with the server's credentials).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's admin URL (its `postgres` database).
    pub fn admin_url(&self) -> &str {
        &self.admin
    }

    /// Kill the server processes of this database's connections (`pg_terminate_backend`),
    /// only those with this `application_name` if one is given; returns how many.
    pub async fn terminate_connections(&self, application_name: Option<&str>) -> usize {
        let mut conn = admin_connection(&self.admin).await;
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid() \
               AND ($2::text IS NULL OR application_name = $2)",
        )
        .bind(&self.name)
        .bind(application_name)
        .fetch_all(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("pg_terminate_backend: {e}"));
        let _ = conn.close().await;
        killed.into_iter().filter(|k| *k).count()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Drop runs inside the test's runtime, which may be single-threaded: use a thread
        // with a runtime of its own, and wait for it so the database is gone when we return.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&admin).await?;
                conn.execute(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                )))
                .await?;
                conn.close().await
            })
            .map_err(std::io::Error::other)
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1:5/postgres", "t1"),
            "postgres://u:p@127.0.0.1:5/t1"
        );
        assert_eq!(
            with_database("postgres://u:p/q@h:5?sslmode=disable", "t1"),
            "postgres://u:p/q@h:5/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t"), "postgres://h/t");
    }
}
