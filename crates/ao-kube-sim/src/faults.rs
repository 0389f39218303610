//! Request recording and fault injection: every request is recorded (method, path, query,
//! body) for assertions, request counting and RBAC checks ([`Recorded::access`]); then faults apply — added latency, 5xx/429
//! answers (the next N, or a seeded probability), an unreachable server, cut watches and
//! `410 Gone` on watch resumes.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::{Service, ServiceExt};

use crate::Sim;
use crate::status::ApiError;

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Vec<u8>,
}

/// What a request needs from RBAC: its verb, resource (with subresource, `pods/log`) and
/// namespace, as the API server's authorizer derives them from the method and path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    pub verb: String,
    pub resource: String,
    /// `None` for cluster-scoped requests.
    pub namespace: Option<String>,
}

impl Recorded {
    pub fn is_watch(&self) -> bool {
        self.query
            .split('&')
            .any(|p| p == "watch=true" || p == "watch=1")
    }

    /// The RBAC request attributes of a resource request; `None` for discovery (`/api`,
    /// `/apis`, `/api/v1`), which every authenticated client may read.
    pub fn access(&self) -> Option<Access> {
        let rest = self.path.strip_prefix("/api/v1/")?;
        let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
        let (namespace, parts) = match parts.as_slice() {
            ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
            other => (None, other),
        };
        let (resource, named) = match parts {
            [r] => (r.to_string(), false),
            [r, _name] => (r.to_string(), true),
            [r, _name, sub] => (format!("{r}/{sub}"), true),
            _ => return None,
        };
        let verb = match (self.method.as_str(), named) {
            ("GET", false) if self.is_watch() => "watch",
            ("GET", false) => "list",
            ("GET", true) if self.is_watch() => "watch",
            ("GET", true) => "get",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", false) => "deletecollection",
            ("DELETE", true) => "delete",
            _ => return None,
        };
        Some(Access {
            verb: verb.into(),
            resource,
            namespace,
        })
    }
}

/// Faults to inject. All off by default.
#[derive(Debug, Default)]
pub struct Faults {
    /// Added to every request.
    pub latency: Duration,
    /// The next requests are answered with these HTTP codes, one each (e.g. 500, 503, 429).
    pub fail_next: VecDeque<u16>,
    /// The next requests of a method whose path ends with a suffix (`("POST", "/pods")`) are
    /// answered with these codes, one each, in order; other requests pass.
    pub fail_next_of: VecDeque<(String, String, u16)>,
    /// Fail this fraction of requests with `fail_code`, using a seeded generator.
    pub fail_probability: f64,
    pub fail_code: u16,
    rng: u64,
    /// In-process clients get a connection error; TCP clients get 503.
    pub unreachable: bool,
    /// Cut each watch stream after this many events.
    pub cut_watch_after: Option<usize>,
    /// The next this-many watches get `410 Gone` (an ERROR event), whatever their version.
    pub gone_next_watches: usize,
}

impl Faults {
    /// Fail `p` of all requests with `code`, reproducibly for a given `seed`.
    pub fn fail_randomly(&mut self, p: f64, code: u16, seed: u64) {
        self.fail_probability = p;
        self.fail_code = code;
        self.rng = seed.max(1);
    }

    fn roll(&mut self) -> bool {
        if self.fail_probability <= 0.0 {
            return false;
        }
        // xorshift64*
        let mut x = self.rng.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        let r = (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
        r < self.fail_probability
    }

    /// The failure to answer this request with, if any.
    fn failure(&mut self, method: &str, path: &str) -> Option<u16> {
        if self.unreachable {
            return Some(503);
        }
        if let Some(c) = self.fail_next.pop_front() {
            return Some(c);
        }
        if let Some((m, suffix, _)) = self.fail_next_of.front()
            && m == method
            && path.ends_with(suffix.as_str())
        {
            return self.fail_next_of.pop_front().map(|(_, _, c)| c);
        }
        self.roll().then_some(self.fail_code)
    }
}

/// The middleware: record, delay, maybe fail.
pub(crate) async fn layer(State(sim): State<Sim>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, 64 * 1024 * 1024).await {
        Ok(b) => b,
        Err(e) => return ApiError::bad_request(e.to_string()).into_response(),
    };
    sim.inner
        .requests
        .lock()
        .expect("requests lock")
        .push(Recorded {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or_default().to_string(),
            body: bytes.to_vec(),
        });
    sim.touch();
    let (latency, failure) = {
        let mut f = sim.faults();
        (
            f.latency,
            f.failure(parts.method.as_str(), parts.uri.path()),
        )
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(code) = failure {
        let reason = match code {
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        };
        return ApiError::new(code, reason, "injected fault").into_response();
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// The in-process transport: a tower service in front of the router that fails like a
/// refused connection when the server is "unreachable".
#[derive(Clone)]
pub(crate) struct SimService {
    sim: Sim,
    router: axum::Router,
}

impl SimService {
    pub fn new(sim: Sim) -> Self {
        let router = sim.router();
        SimService { sim, router }
    }
}

impl Service<http::Request<kube::client::Body>> for SimService {
    type Response = Response;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<kube::client::Body>) -> Self::Future {
        let router = self.router.clone();
        let sim = self.sim.clone();
        Box::pin(async move {
            if sim.faults().unreachable {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "connection refused (simulated)",
                ));
            }
            match router.oneshot(req.map(axum::body::Body::new)).await {
                Ok(resp) => Ok(resp),
                Err(e) => match e {},
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(method: &str, path: &str, query: &str) -> Option<(String, String, Option<String>)> {
        let r = Recorded {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            body: Vec::new(),
        };
        r.access().map(|a| (a.verb, a.resource, a.namespace))
    }

    #[test]
    fn requests_map_to_rbac_attributes() {
        let ns = Some("agents".to_string());
        let a = |v: &str, r: &str| Some((v.to_string(), r.to_string(), ns.clone()));
        let pods = "/api/v1/namespaces/agents/pods";
        assert_eq!(access("GET", pods, "labelSelector=x"), a("list", "pods"));
        assert_eq!(
            access("GET", pods, "watch=true&resourceVersion=5"),
            a("watch", "pods")
        );
        assert_eq!(access("POST", pods, ""), a("create", "pods"));
        assert_eq!(access("GET", &format!("{pods}/p"), ""), a("get", "pods"));
        assert_eq!(
            access("DELETE", &format!("{pods}/p"), ""),
            a("delete", "pods")
        );
        assert_eq!(access("DELETE", pods, ""), a("deletecollection", "pods"));
        assert_eq!(
            access("GET", &format!("{pods}/p/log"), "follow=true"),
            a("get", "pods/log")
        );
        assert_eq!(
            access("PATCH", &format!("{pods}/p/status"), ""),
            a("patch", "pods/status")
        );
        let secrets = "/api/v1/namespaces/agents/secrets";
        assert_eq!(access("POST", secrets, ""), a("create", "secrets"));
        assert_eq!(
            access("GET", "/api/v1/namespaces", ""),
            Some(("list".into(), "namespaces".into(), None))
        );
        assert_eq!(access("GET", "/api", ""), None);
        assert_eq!(access("GET", "/api/v1", ""), None);
    }
}
