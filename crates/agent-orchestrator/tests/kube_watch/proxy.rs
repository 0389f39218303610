//! A TCP proxy of the test's own between the orchestrator and the API server, so that a test
//! can cut every connection at a moment it chooses (as a load balancer restart or a network
//! blip would). TLS passes through untouched: the API server's certificate names 127.0.0.1,
//! and the proxy listens there too.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// Live connections by id, each the task that copies its bytes both ways.
type Live = Arc<Mutex<HashMap<u64, AbortHandle>>>;

pub struct CutProxy {
    addr: SocketAddr,
    live: Live,
    acceptor: AbortHandle,
}

impl CutProxy {
    /// Listens on `127.0.0.1:0` and forwards every connection to `server` (`https://host:port`).
    pub async fn start(server: &str) -> CutProxy {
        let target = server
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let live: Live = Arc::default();
        let l = live.clone();
        let mut next_id = 0u64;
        let acceptor = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let id = next_id;
                next_id += 1;
                let target = target.clone();
                let l2 = l.clone();
                // Registered before the copy starts, so a cut never misses a connection.
                let mut guard = l.lock().unwrap();
                let task = tokio::spawn(async move {
                    let _ = pipe(client, &target).await;
                    l2.lock().unwrap().remove(&id);
                });
                guard.insert(id, task.abort_handle());
            }
        })
        .abort_handle();
        CutProxy {
            addr,
            live,
            acceptor,
        }
    }

    /// The URL to give the orchestrator instead of the API server's.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Cuts every live connection at once (both sides see a reset). Returns how many.
    pub fn cut(&self) -> usize {
        let all: Vec<AbortHandle> = self.live.lock().unwrap().drain().map(|(_, h)| h).collect();
        for h in &all {
            h.abort();
        }
        all.len()
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.cut();
    }
}

async fn pipe(mut client: TcpStream, target: &str) -> std::io::Result<()> {
    let mut server = TcpStream::connect(target).await?;
    // Closing with linger 0 sends a reset: an abrupt cut, not an orderly close.
    client.set_zero_linger()?;
    server.set_zero_linger()?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}
