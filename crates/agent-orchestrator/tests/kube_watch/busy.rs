//! A busy neighbour: it keeps the squeezed priority level's seats taken most of the time, the
//! way another client of a busy cluster does, so that the orchestrator's requests are admitted
//! now and then and refused with 429 otherwise.
//!
//! Each of its loops sends a create whose body ends only after `hold` (the API server keeps
//! the seat until it has read the body), one after the other. With more loops than seats, the
//! loops that find every seat taken are refused at once (429, answered before the body); they
//! try again 20 ms later. A seat that frees up is taken by whichever request comes first: the
//! neighbour's, mostly, or the orchestrator's.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::flow::Neighbour;

/// What the neighbour's requests got.
#[derive(Debug, Default)]
pub struct Busy {
    pub admitted: AtomicUsize,
    pub refused: AtomicUsize,
    stop: AtomicBool,
}

impl Busy {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Neighbour {
    /// Starts `loops` loops of seat-holding creates (each holding its seat for `hold`); they
    /// run until [`Busy::stop`].
    pub fn keep_busy(&self, loops: usize, hold: Duration) -> Arc<Busy> {
        let busy = Arc::new(Busy::default());
        let addr = self.url.trim_start_matches("https://");
        let (host, path) = addr.split_once('/').expect("URL path");
        let head = format!(
            "POST /{path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{{\r\n",
            self.token
        );
        for _ in 0..loops {
            let (busy, tls, host, head) = (
                busy.clone(),
                self.tls.clone(),
                host.to_owned(),
                head.clone(),
            );
            std::thread::spawn(move || {
                while !busy.stop.load(Ordering::SeqCst) {
                    match one(&tls, &host, &head, hold) {
                        Ok(true) => busy.admitted.fetch_add(1, Ordering::SeqCst),
                        Ok(false) => {
                            std::thread::sleep(Duration::from_millis(20));
                            busy.refused.fetch_add(1, Ordering::SeqCst)
                        }
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(20));
                            0
                        }
                    };
                }
            });
        }
        busy
    }
}

/// One create: true if it was admitted (it held a seat for `hold`), false if refused.
fn one(
    tls: &Arc<rustls::ClientConfig>,
    host: &str,
    head: &str,
    hold: Duration,
) -> std::io::Result<bool> {
    let tcp = TcpStream::connect(host)?;
    tcp.set_nodelay(true)?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(tls.clone(), name).map_err(std::io::Error::other)?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    s.write_all(head.as_bytes())?;
    s.flush()?;
    // An answer within `hold`, before the body ended, is a refusal.
    s.sock.set_read_timeout(Some(hold))?;
    let mut answer = [0u8; 256];
    match s.read(&mut answer) {
        Ok(n) if n > 0 => return Ok(!String::from_utf8_lossy(&answer[..n]).contains(" 429 ")),
        Ok(_) => return Ok(false),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        Err(e) => return Err(e),
    }
    s.sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"1\r\n}\r\n0\r\n\r\n")?;
    s.flush()?;
    let _ = s.read(&mut answer)?;
    Ok(true)
}
