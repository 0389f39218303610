//! The kubelet's log endpoint, `GET /containerLogs/{namespace}/{pod}/{container}`, over HTTPS
//! on 127.0.0.1 with the env's serving certificate. The API server proxies `pods/log` (and so
//! `kubectl logs`) here, passing `follow`, `tailLines`, `timestamps`, `sinceSeconds`,
//! `sinceTime`, `limitBytes` and `previous`. Client certificates are not checked: the
//! endpoint only ever listens on loopback, for tests.

use std::collections::HashMap;
use std::path::Path as FsPath;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use k8s_openapi::jiff::Timestamp;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use crate::logs::{Query as LogQuery, Reader};
use crate::{NodeError, Shared};

/// The HTTPS server of one node's log endpoint.
pub(crate) struct LogServer {
    listener: std::net::TcpListener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
}

impl LogServer {
    pub(crate) fn new(
        listener: std::net::TcpListener,
        cert: &FsPath,
        key: &FsPath,
        shared: Arc<Shared>,
    ) -> Result<Self, NodeError> {
        let tls = |what: String| {
            move |e: rustls::pki_types::pem::Error| NodeError::Tls {
                what: format!("{what}: {e}"),
                source: None,
            }
        };
        let certs = CertificateDer::pem_file_iter(cert)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(tls(format!("reading {}", cert.display())))?;
        let key =
            PrivateKeyDer::from_pem_file(key).map_err(tls(format!("reading {}", key.display())))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
            .map_err(|e| NodeError::Tls {
                what: "building the server config".into(),
                source: Some(e),
            })?;
        listener
            .set_nonblocking(true)
            .map_err(NodeError::io("log endpoint socket"))?;
        Ok(LogServer {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            shared,
        })
    }

    /// Accepts connections until the node is cancelled.
    pub(crate) async fn run(self) {
        let listener = match tokio::net::TcpListener::from_std(self.listener) {
            Ok(l) => l,
            Err(error) => return tracing::error!(error = %error, "log endpoint listener"),
        };
        let router = Router::new()
            .route(
                "/containerLogs/{namespace}/{pod}/{container}",
                get(container_logs),
            )
            .with_state(self.shared.clone());
        let cancel = self.shared.cancel.clone();
        loop {
            let (tcp, _) = tokio::select! {
                () = cancel.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(error) => {
                        tracing::warn!(error = %error, "log endpoint accept");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let (acceptor, router, cancel) =
                (self.acceptor.clone(), router.clone(), cancel.clone());
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(t) => t,
                    Err(error) => {
                        return tracing::debug!(error = %error, "log endpoint TLS handshake");
                    }
                };
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(router));
                tokio::select! {
                    () = cancel.cancelled() => {}
                    result = conn => if let Err(error) = result {
                        tracing::debug!(error = %error, "log endpoint connection");
                    },
                }
            });
        }
    }
}

async fn container_logs(
    State(shared): State<Arc<Shared>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let query = match parse_query(&q) {
        Ok(query) => query,
        Err(message) => return (StatusCode::BAD_REQUEST, message).into_response(),
    };
    if flag(&q, "previous") {
        let message =
            format!("previous terminated container \"{container}\" in pod \"{pod}\" not found");
        return (StatusCode::BAD_REQUEST, message).into_response();
    }
    let Some(file) = shared.logs.get(&ns, &pod, &container) else {
        let message = shared.logs.not_started(&ns, &pod, &container);
        return (StatusCode::BAD_REQUEST, message).into_response();
    };
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        let mut reader = Reader::new(file, query);
        loop {
            let next = reader.next().await;
            let end = !matches!(next, Ok(Some(_)));
            let item = match next {
                Ok(Some(chunk)) => Ok(chunk),
                Ok(None) => break,
                Err(e) => Err(e),
            };
            if tx.send(item).await.is_err() || end {
                break;
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "text/plain")],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response()
}

fn flag(q: &HashMap<String, String>, key: &str) -> bool {
    q.get(key).is_some_and(|v| v == "true" || v == "1")
}

fn number(q: &HashMap<String, String>, key: &str) -> Result<Option<i64>, String> {
    q.get(key)
        .map(|v| v.parse::<i64>().map_err(|_| format!("invalid {key}: {v}")))
        .transpose()
}

/// The log query from the request's parameters (Go's names, as the API server forwards them).
pub(crate) fn parse_query(q: &HashMap<String, String>) -> Result<LogQuery, String> {
    let since = match (number(q, "sinceSeconds")?, q.get("sinceTime")) {
        (Some(secs), _) => {
            Some(Timestamp::now() - Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
        }
        (None, Some(t)) => Some(t.parse().map_err(|_| format!("invalid sinceTime: {t}"))?),
        (None, None) => None,
    };
    let non_negative = |v: Option<i64>| v.map(|n| usize::try_from(n.max(0)).unwrap_or(0));
    Ok(LogQuery {
        follow: flag(q, "follow"),
        tail_lines: non_negative(number(q, "tailLines")?),
        timestamps: flag(q, "timestamps"),
        since,
        limit_bytes: non_negative(number(q, "limitBytes")?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters() {
        let q: HashMap<String, String> = [
            ("follow", "true"),
            ("tailLines", "3"),
            ("timestamps", "1"),
            ("limitBytes", "10"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let p = parse_query(&q).unwrap();
        assert!(p.follow && p.timestamps);
        assert_eq!(
            (p.tail_lines, p.limit_bytes, p.since),
            (Some(3), Some(10), None)
        );
        let bad: HashMap<String, String> = [("tailLines".to_owned(), "x".to_owned())].into();
        assert!(parse_query(&bad).is_err());
        let since: HashMap<String, String> = [("sinceSeconds".to_owned(), "60".to_owned())].into();
        let t = parse_query(&since).unwrap().since.unwrap();
        assert!(t < Timestamp::now() && t > Timestamp::now() - Duration::from_secs(120));
    }
}
