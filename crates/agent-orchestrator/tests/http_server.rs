//! The HTTP server's read timeouts, connection cap and shutdown drain, through real loopback
//! sockets and tokio's paused clock: time only moves when every task waits, so a stalled
//! client meets the server's timers at once, and the elapsed virtual time shows which timer
//! fired.

use std::time::Duration;

use agent_orchestrator::http_server::{DRAIN_LIMIT, HttpLimits, serve};
use axum::Router;
use axum::body::Bytes;
use axum::routing::{get, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;

const HEADERS: Duration = Duration::from_secs(10);
const BODY: Duration = Duration::from_secs(30);

struct Server {
    addr: std::net::SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(max_connections: usize) -> Server {
    let app = Router::new()
        .route("/", get(|| async { "hello" }))
        .route("/echo", post(|b: Bytes| async move { b }))
        .route(
            "/endless",
            get(|| async {
                let never = futures::stream::pending::<Result<Bytes, std::io::Error>>();
                axum::body::Body::from_stream(never)
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = HttpLimits {
        header_read_timeout: HEADERS,
        body_read_timeout: BODY,
        max_connections,
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(serve(listener, app, limits, stop.clone().cancelled_owned()));
    Server { addr, stop, task }
}

/// Everything the server sends until it closes the connection.
async fn read_all(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(start_paused = true)]
async fn half_sent_headers_are_cut_off_after_the_header_timeout() {
    let srv = start(8).await;
    let mut c = TcpStream::connect(srv.addr).await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let t0 = Instant::now();
    let got = timeout(HEADERS * 2, read_all(&mut c))
        .await
        .expect("the server closed the connection");
    let waited = t0.elapsed();
    assert!(
        waited >= HEADERS && waited < HEADERS + Duration::from_secs(1),
        "{waited:?}"
    );
    assert!(!got.contains("200 OK"), "{got}");
}

#[tokio::test(start_paused = true)]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let srv = start(8).await;
    let mut c = TcpStream::connect(srv.addr).await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let t0 = Instant::now();
    let got = timeout(HEADERS * 2, read_all(&mut c)).await.unwrap();
    assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
    assert!(t0.elapsed() >= HEADERS, "{:?}", t0.elapsed());
}

#[tokio::test(start_paused = true)]
async fn a_slow_body_gets_408_and_a_closed_connection() {
    let srv = start(8).await;
    let mut c = TcpStream::connect(srv.addr).await.unwrap();
    c.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    let t0 = Instant::now();
    let got = timeout(BODY * 2, read_all(&mut c))
        .await
        .expect("the server answered and closed");
    let waited = t0.elapsed();
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.contains(r#""code":"request_timeout""#), "{got}");
    assert!(
        waited >= BODY && waited < BODY + Duration::from_secs(1),
        "{waited:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_complete_body_is_served() {
    let srv = start(8).await;
    let mut c = TcpStream::connect(srv.addr).await.unwrap();
    c.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await
    .unwrap();
    let got = timeout(Duration::from_secs(1), read_all(&mut c))
        .await
        .unwrap();
    assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
    assert!(got.ends_with("hello"), "{got}");
}

#[tokio::test(start_paused = true)]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let srv = start(1).await;
    let holder = TcpStream::connect(srv.addr).await.unwrap();
    // Let the server take the first connection (and its only permit).
    tokio::task::yield_now().await;
    let mut second = TcpStream::connect(srv.addr).await.unwrap();
    second
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let early = timeout(HEADERS / 2, second.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "served while the cap was reached: {early:?}"
    );
    drop(holder);
    let got = timeout(Duration::from_secs(1), read_all(&mut second))
        .await
        .expect("served once the first connection closed");
    assert!(got.starts_with("HTTP/1.1 200 OK"), "{got}");
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_accepting_and_returns() {
    let srv = start(8).await;
    let mut c = TcpStream::connect(srv.addr).await.unwrap();
    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 17];
    c.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200 OK\r\n");
    srv.stop.cancel();
    timeout(Duration::from_secs(1), srv.task)
        .await
        .expect("serve returned")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(srv.addr).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_stream_that_never_ends_holds_shutdown_up_to_the_drain_limit_only() {
    let srv = start(8).await;
    let mut c = TcpStream::connect(srv.addr).await.unwrap();
    c.write_all(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 17];
    c.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200 OK\r\n");
    let asked = Instant::now();
    srv.stop.cancel();
    timeout(DRAIN_LIMIT + Duration::from_secs(1), srv.task)
        .await
        .expect("serve returned despite the open stream")
        .unwrap()
        .unwrap();
    assert!(
        asked.elapsed() >= DRAIN_LIMIT,
        "returned after {:?}, before the drain limit",
        asked.elapsed()
    );
}
