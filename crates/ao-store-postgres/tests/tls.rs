//! TLS to the database, as the README's URLs use it: the test server offers TLS with a
//! certificate from a throwaway CA (`scripts/postgres-test.sh`). `sslmode=require` encrypts
//! without checking the certificate; `verify-full` checks it against `sslrootcert` and the
//! host name, and refuses a server it can't verify.

use ao_store_postgres::{PgOptions, PgStore};
use ao_testkit::postgres::{ca_file, fresh_database};

fn with_params(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

/// Whether the store's own connection is encrypted, as the server sees it.
async fn encrypted(store: &PgStore) -> bool {
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .expect("pg_stat_ssl")
}

#[tokio::test]
async fn sslmode_require_and_verify_full_connect_over_tls() {
    let db = fresh_database().await;
    let require = with_params(db.url(), "sslmode=require");
    let store = PgStore::connect(&require, PgOptions::default())
        .await
        .expect("sslmode=require");
    assert!(encrypted(&store).await, "sslmode=require encrypts");

    let ca = ca_file();
    let verified = with_params(
        &db.url().replace("127.0.0.1", "localhost"),
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    );
    let store = PgStore::connect(&verified, PgOptions::default())
        .await
        .expect("verify-full");
    assert!(encrypted(&store).await);
}

#[tokio::test]
async fn verify_full_refuses_a_server_it_cannot_verify() {
    let db = fresh_database().await;
    // No sslrootcert: the system's roots don't know the test CA.
    let unknown = with_params(
        &db.url().replace("127.0.0.1", "localhost"),
        "sslmode=verify-full",
    );
    let err = PgStore::connect(&unknown, PgOptions::default())
        .await
        .expect_err("unverifiable");
    assert!(
        matches!(err, ao_store_postgres::ConnectError::Tls { .. }),
        "{err:?}"
    );
    let text = ao_core::runtime::error_chain(&err);
    assert!(
        text.contains("TLS") && text.to_lowercase().contains("certificate"),
        "{text}"
    );
    assert!(!text.contains(&password(db.url())), "no password in {text}");
}

fn password(url: &str) -> String {
    let after = url.split_once("://").map_or(url, |(_, r)| r);
    let userinfo = after.split_once('@').map_or("", |(u, _)| u);
    userinfo.split_once(':').map_or("", |(_, p)| p).to_string()
}
