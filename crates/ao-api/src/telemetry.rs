//! The HTTP access log and request-duration metrics, by method, matched route and status.
//!
//! The access log is `tower_http`'s [`TraceLayer`]: every request runs inside a `request` span
//! carrying `method` and `route` (the matched route template, never the raw path, so task ids
//! and query strings stay out of it), and one `access` event with `status` and `latency_ms`
//! closes it. Lines logged while handling the request (such as "task accepted") carry the span
//! too. The metrics are a separate middleware, [`observe`].

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::TraceLayer;
use tracing::Span;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone)]
pub struct HttpMetrics {
    pub duration: Family<HttpLabels, Histogram, fn() -> Histogram>,
}

impl HttpMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = HttpMetrics {
            // 0.1 ms .. ~3.3 s
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 2.0, 16))
            }),
        };
        registry.sub_registry_with_prefix("ao").register(
            "http_request_duration_seconds",
            "HTTP request duration by method, matched route and status",
            m.duration.clone(),
        );
        m
    }
}

/// The matched route template of a request, or `unmatched`.
fn route_of<B>(req: &http::Request<B>) -> &str {
    req.extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
}

/// Records each request's duration by method, matched route and status.
pub async fn observe(State(metrics): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = route_of(&req).to_string();
    let resp = next.run(req).await;
    metrics
        .duration
        .get_or_create(&HttpLabels {
            method,
            route,
            status: resp.status().as_u16(),
        })
        .observe(start.elapsed().as_secs_f64());
    resp
}

type MakeSpan = fn(&http::Request<Body>) -> Span;
type OnResponse = fn(&http::Response<Body>, Duration, &Span);

/// The access log: a `request` span per request and an `access` event when it is answered.
pub type AccessLog =
    TraceLayer<SharedClassifier<ServerErrorsAsFailures>, MakeSpan, (), OnResponse, (), (), ()>;

/// Builds the access-log layer.
pub fn access_log() -> AccessLog {
    TraceLayer::new_for_http()
        .make_span_with(request_span as MakeSpan)
        .on_request(())
        .on_response(log_response as OnResponse)
        .on_body_chunk(())
        .on_eos(())
        .on_failure(())
}

fn request_span(req: &http::Request<Body>) -> Span {
    tracing::info_span!(
        "request",
        method = %req.method(),
        route = %route_of(req),
    )
}

fn log_response(resp: &http::Response<Body>, latency: Duration, _span: &Span) {
    tracing::info!(
        target: "access",
        status = resp.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "request"
    );
}
