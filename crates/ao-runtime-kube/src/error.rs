//! Errors of the Kubernetes runtime, and how an API failure maps to what the scheduler does:
//! a passing failure (throttling, 5xx, unreachable) requeues the task; anything else fails
//! the launch. API writes are retried on passing failures with `backon`'s exponential
//! backoff, sleeping on Tokio's clock (so tests drive it with paused time).

use std::time::Duration;

use ao_core::runtime::{BoxError, RuntimeError};
use backon::{ExponentialBuilder, Retryable};
use tracing::debug;

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error(
        "no Kubernetes configuration found: not in a cluster, no KUBECONFIG or ~/.kube/config, and AO_KUBECONFIG is not set"
    )]
    NoConfig,
    #[error("AO_KUBECONFIG is not a base64-encoded kubeconfig")]
    BadKubeconfig(#[source] BoxError),
    #[error("Kubernetes client configuration failed")]
    Config(#[source] BoxError),
    #[error("Kubernetes API request failed")]
    Api(#[from] kube::Error),
    #[error("log stream broke: {0}")]
    LogStream(String),
    #[error("task store error")]
    Store(#[from] ao_core::store::StoreError),
}

/// True for failures worth retrying: throttling (429), server errors (5xx) and transport
/// errors (connection refused, reset, timeouts).
pub fn is_transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code == 429 || s.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

pub fn is_already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Map an API failure for the scheduler: transient → `Unavailable` (requeue), else `other`.
/// The API error stays the source of the runtime error.
pub fn to_runtime(e: kube::Error, other: fn(BoxError) -> RuntimeError) -> RuntimeError {
    let transient = is_transient(&e);
    let cause: BoxError = Box::new(KubeError::Api(e));
    if transient {
        RuntimeError::Unavailable(cause)
    } else {
        other(cause)
    }
}

/// The least wait before retrying a throttled (429) call: the Status's `retryAfterSeconds`
/// when it has one, else 1 s, the least `Retry-After` API Priority and Fairness sends (its
/// header is honoured by the client's own retries, [`crate::client_retry`], and
/// is gone by the time the error gets here).
fn throttle_floor(e: &kube::Error) -> Option<Duration> {
    match e {
        kube::Error::Api(s) if s.code == 429 => {
            let secs = s.details.as_ref().map_or(0, |d| d.retry_after_seconds);
            Some(Duration::from_secs(u64::from(secs.max(1))))
        }
        _ => None,
    }
}

/// How API writes (create/delete) are retried on transient failures.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.first_backoff)
            .with_max_delay(self.max_backoff)
            .with_factor(2.0)
            .with_max_times(self.attempts.saturating_sub(1) as usize)
    }

    /// Run `f` until it succeeds, fails for good, or the attempts run out.
    pub async fn run<T, F, Fut>(
        &self,
        task_id: ao_core::task::TaskId,
        what: &str,
        f: F,
    ) -> Result<T, kube::Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
    {
        f.retry(self.backoff())
            .sleep(tokio::time::sleep)
            .when(is_transient)
            .adjust(|e, backoff| backoff.map(|b| throttle_floor(e).map_or(b, |f| b.max(f))))
            .notify(|e, backoff| {
                debug!(task_id = %task_id, what, error = %e, backoff_ms = backoff.as_millis() as u64, "transient API failure; retrying");
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use ao_core::task::TaskId;
    use kube::core::Status;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(
            Status::failure("injected", "Injected").with_code(code),
        ))
    }

    /// Transient failures are retried with doubling, capped pauses on Tokio's (paused) clock;
    /// a permanent one is returned at once.
    #[tokio::test(start_paused = true)]
    async fn transient_failures_back_off_then_give_up() {
        let policy = RetryPolicy {
            attempts: 4,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(250),
        };
        let calls = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let r: Result<(), _> = policy
            .run(TaskId::new(), "test", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(api(503))
            })
            .await;
        assert!(matches!(r, Err(kube::Error::Api(s)) if s.code == 503));
        assert_eq!(calls.load(Ordering::SeqCst), 4, "four attempts in all");
        // 100 + 200 + 250 (capped) of virtual time (Tokio's timer rounds up to the ms).
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(550) && waited < Duration::from_millis(555),
            "{waited:?}"
        );

        calls.store(0, Ordering::SeqCst);
        let r: Result<(), _> = policy
            .run(TaskId::new(), "test", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(api(409))
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a conflict is not retried");
    }

    /// A throttled call is never retried sooner than the server allows: 1 s at least, or the
    /// Status's `retryAfterSeconds`, whatever the backoff says.
    #[tokio::test(start_paused = true)]
    async fn a_throttled_call_waits_at_least_the_retry_after() {
        let policy = RetryPolicy::default();
        let calls = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let r: Result<(), _> = policy
            .run(TaskId::new(), "test", || async {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err(api(429))
                } else {
                    Ok(())
                }
            })
            .await;
        assert!(r.is_ok());
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_secs(1) && waited < Duration::from_millis(1_010),
            "{waited:?}"
        );

        let mut slow = Status::failure("slow down", "TooManyRequests").with_code(429);
        slow.details =
            Some(serde_json::from_value(serde_json::json!({"retryAfterSeconds": 3})).unwrap());
        let slow = kube::Error::Api(Box::new(slow));
        assert_eq!(throttle_floor(&slow), Some(Duration::from_secs(3)));
        assert_eq!(throttle_floor(&api(503)), None);
    }

    #[test]
    fn runtime_errors_keep_the_api_error_as_their_cause() {
        let e = to_runtime(api(503), RuntimeError::Other);
        assert!(matches!(e, RuntimeError::Unavailable(_)));
        let kube_err = std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<KubeError>())
            .expect("the KubeError is the source");
        assert!(matches!(kube_err, KubeError::Api(kube::Error::Api(s)) if s.code == 503));
        assert!(matches!(
            to_runtime(api(422), RuntimeError::Launch),
            RuntimeError::Launch(_)
        ));
    }
}
