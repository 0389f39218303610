//! The one way every stand-in server here listens: `app` on a fresh `127.0.0.1` port, served
//! by a task the server aborts when it is dropped.

use std::net::SocketAddr;

use axum::Router;
use tokio::task::JoinHandle;

/// Serves `app` on `127.0.0.1:0`; returns the address and the serving task. Must be called
/// inside a Tokio runtime.
pub(crate) async fn loopback(app: Router) -> (SocketAddr, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, task)
}
