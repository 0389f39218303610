//! Start-up errors name the problem (and never the password): a bad password, an unknown
//! database, a port nobody listens on, a malformed URL.

use ao_store_postgres::{ConnectError, PgOptions, PgStore, redact_url};
use ao_testkit::postgres::{fresh_database, with_database};

/// The password of a `postgres://user:password@host...` URL.
fn password(url: &str) -> &str {
    let rest = url.split_once("://").unwrap().1;
    let info = rest.rsplit_once('@').unwrap().0;
    info.split_once(':').unwrap().1
}

fn replace_password(url: &str, new: &str) -> String {
    url.replacen(&format!(":{}@", password(url)), &format!(":{new}@"), 1)
}

async fn refused(url: &str) -> ConnectError {
    match PgStore::connect(url, PgOptions::default()).await {
        Ok(_) => panic!("connected to {}", redact_url(url)),
        Err(e) => e,
    }
}

/// The message and every cause, as an operator would see them.
fn chain(e: &ConnectError) -> String {
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[tokio::test]
async fn a_wrong_password_is_an_authentication_error() {
    let db = fresh_database().await;
    let url = replace_password(db.url(), "not-the-password");
    let e = refused(&url).await;
    assert!(
        matches!(e, ConnectError::Authentication { ref user, .. } if user == "postgres"),
        "{e:?}"
    );
    let text = chain(&e);
    assert!(text.contains("refused the credentials"), "{text}");
    assert!(
        !text.contains("not-the-password"),
        "the password leaked: {text}"
    );
}

#[tokio::test]
async fn an_unknown_database_is_named() {
    let db = fresh_database().await;
    let url = with_database(db.url(), "no_such_database");
    let e = refused(&url).await;
    assert!(
        matches!(e, ConnectError::UnknownDatabase { ref database, .. } if database == "no_such_database"),
        "{e:?}"
    );
    assert!(
        !chain(&e).contains(password(db.url())),
        "the password leaked"
    );
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let db = fresh_database().await;
    // A port that was free a moment ago: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!(
        "postgres://postgres:secret-pw@127.0.0.1:{port}/{}",
        db.name()
    );
    let e = refused(&url).await;
    assert!(
        matches!(e, ConnectError::Unreachable { port: p, .. } if p == port),
        "{e:?}"
    );
    let text = chain(&e);
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("secret-pw"), "the password leaked: {text}");
}

#[tokio::test]
async fn a_malformed_url_is_shown_without_its_password() {
    let e = refused("postgres://ao:secret-pw@db:notaport/tasks").await;
    assert!(matches!(e, ConnectError::InvalidUrl { .. }), "{e:?}");
    let text = chain(&e);
    assert!(
        text.contains("postgres://ao:***@db:notaport/tasks"),
        "{text}"
    );
    assert!(!text.contains("secret-pw"), "the password leaked: {text}");
}
