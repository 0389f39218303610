//! Serving the HTTP application on a listener, with the limits `axum::serve` does not have:
//! a client gets [`HttpLimits::header_read_timeout`] to send a request's headers (an idle
//! keep-alive connection is closed after the same time), [`HttpLimits::body_read_timeout`] to
//! send its whole body once the handler starts reading it (else 408 and the connection is
//! closed), and at most [`HttpLimits::max_connections`] connections are served at once (further
//! ones wait in the listen backlog until one closes). Without these, a client that never
//! finishes its headers or body holds its connection, a task and memory forever.
//!
//! Connections speak HTTP/1.1 (hyper's server, with its header timer). Shutdown stops
//! accepting, lets in-flight requests finish and closes idle connections.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tower::ServiceExt;
use tracing::{debug, warn};

/// Options of `serve` for the HTTP server.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// Seconds a client has to send a request's headers; an idle keep-alive connection is
    /// closed after the same time.
    #[arg(long, env = "AO_HEADER_READ_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout: u64,

    /// Seconds a client has to send a request's whole body once the server starts reading it;
    /// a slower one gets 408 and its connection is closed.
    #[arg(long, env = "AO_BODY_READ_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_read_timeout: u64,

    /// Most client connections served at once; more wait until one closes.
    #[arg(long, env = "AO_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
}

/// The limits the server applies to every connection.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: usize,
}

impl From<&HttpArgs> for HttpLimits {
    fn from(a: &HttpArgs) -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(a.header_read_timeout),
            body_read_timeout: Duration::from_secs(a.body_read_timeout),
            max_connections: a.max_connections as usize,
        }
    }
}

/// The longest shutdown waits for open connections to finish. A stream that never ends by
/// itself (an open dashboard's change stream, a follow of a running task's events) would
/// otherwise hold the process up for as long as its client stays.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Serve `app` on `listener` until `shutdown` resolves, then drain the open connections, for
/// at most [`DRAIN_LIMIT`].
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let body_timeout = limits.body_read_timeout;
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            handle(app.clone(), body_timeout, req)
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(error = %e, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_LIMIT, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            drain_limit_seconds = DRAIN_LIMIT.as_secs(),
            "connections still open after the drain limit (streams); closing them"
        );
    }
    Ok(())
}

/// Errors of one connection (the peer reset it before we took it) are ignored; others (out
/// of file descriptors) are logged, and accepting pauses briefly so as not to spin.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    warn!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn handle(
    app: Router,
    body_timeout: Duration,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let timed_out = Arc::new(AtomicBool::new(false));
    let (parts, body) = req.into_parts();
    let body = DeadlineBody {
        inner: body,
        timeout: body_timeout,
        deadline: None,
        timed_out: timed_out.clone(),
    };
    let resp = app
        .oneshot(Request::from_parts(parts, Body::new(body)))
        .await?;
    if timed_out.load(Ordering::Relaxed) {
        return Ok(request_timeout(body_timeout));
    }
    Ok(resp)
}

/// 408 in the API's error shape; the connection closes, as its body was not read to the end.
fn request_timeout(limit: Duration) -> Response<Body> {
    let body = ao_api::error::ErrorBody {
        error: ao_api::error::ErrorDetail {
            code: "request_timeout",
            message: format!(
                "the request body did not arrive within {} s",
                limit.as_secs_f64()
            ),
            field: None,
        },
    };
    let mut resp = (StatusCode::REQUEST_TIMEOUT, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// The request body, failing once it has taken longer than `timeout` since it was first read.
struct DeadlineBody {
    inner: Incoming,
    timeout: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimedOut;

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let timeout = this.timeout;
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if deadline.as_mut().poll(cx).is_ready() {
            this.timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(BodyTimedOut.into())));
        }
        Pin::new(&mut this.inner)
            .poll_frame(cx)
            .map_err(axum::BoxError::from)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
