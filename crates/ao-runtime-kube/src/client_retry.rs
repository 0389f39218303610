//! The API client's own retry of one request answered 429, 503 or 504 (a `tower` retry
//! policy in place of kube's default): at most [`CLIENT_RETRIES`] retries, each after the
//! server's `Retry-After` (API Priority and Fairness sends one) but never more than
//! [`MAX_WAIT`], else after a backoff from 100 ms. Bounded on purpose: a launch awaits its API
//! calls inside a scheduler step, so a request that waits for minutes (kube's default is 15
//! retries with an uncapped Retry-After and a backoff growing to minutes) stalls every other
//! launch, stop and exit. Longer throttling is left to [`crate::error::RetryPolicy`] and then
//! to the scheduler, which requeues the task with its own backoff.

use std::time::Duration;

use http::{Request, Response, StatusCode};
use kube::client::Body;
use tower::BoxError;
use tower::retry::Policy;

/// Retries of one request by the client.
pub const CLIENT_RETRIES: u32 = 2;
/// The longest the client waits before one retry, whatever `Retry-After` says.
pub const MAX_WAIT: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Default)]
pub(crate) struct ClientRetry {
    retries: u32,
}

/// How long to wait before retry number `retry` (0-based), given the response's
/// `Retry-After` value if any: the server's date with core's jitter
/// ([`ao_core::retry::server_wait`]), else a doubling backoff; never more than [`MAX_WAIT`].
pub(crate) fn wait(retry_after: Option<&str>, retry: u32) -> Duration {
    let server = retry_after
        .and_then(|v| ao_core::retry::parse_retry_after(v, std::time::SystemTime::now()));
    match server {
        Some(d) => ao_core::retry::server_wait(d, MAX_WAIT),
        None => FIRST_BACKOFF
            .saturating_mul(2u32.saturating_pow(retry))
            .min(MAX_WAIT),
    }
}

impl<Res> Policy<Request<Body>, Response<Res>, BoxError> for ClientRetry {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _req: &mut Request<Body>,
        result: &mut Result<Response<Res>, BoxError>,
    ) -> Option<Self::Future> {
        let Ok(response) = result else { return None };
        let status = response.status();
        let passing = status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::SERVICE_UNAVAILABLE
            || status == StatusCode::GATEWAY_TIMEOUT;
        if !passing || self.retries >= CLIENT_RETRIES {
            return None;
        }
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok());
        let wait = wait(retry_after, self.retries);
        self.retries += 1;
        Some(tokio::time::sleep(wait))
    }

    fn clone_request(&mut self, req: &Request<Body>) -> Option<Request<Body>> {
        // Only a body held in memory can be sent again (every create and delete is).
        let body = req.body().try_clone()?;
        let mut clone = Request::new(body);
        *clone.method_mut() = req.method().clone();
        *clone.uri_mut() = req.uri().clone();
        *clone.version_mut() = req.version();
        *clone.headers_mut() = req.headers().clone();
        *clone.extensions_mut() = req.extensions().clone();
        Some(clone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_retry_after_but_never_longer_than_the_cap() {
        let one = wait(Some("1"), 0);
        assert!(one >= Duration::from_secs(1) && one <= Duration::from_millis(1_100));
        // APF raises Retry-After up to 32 s under sustained drops: capped.
        assert_eq!(wait(Some("32"), 0), MAX_WAIT);
        assert_eq!(wait(None, 0), Duration::from_millis(100));
        assert_eq!(wait(None, 1), Duration::from_millis(200));
        assert_eq!(wait(Some("soon"), 2), Duration::from_millis(400));
        assert_eq!(wait(None, 30), MAX_WAIT);
    }
}
