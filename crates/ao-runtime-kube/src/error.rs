//! Errors of the Kubernetes runtime, and how an API failure maps to what the scheduler does:
//! a passing failure (throttling, 5xx, unreachable) requeues the task; anything else fails
//! the launch. API writes are retried on passing failures with `backon`'s exponential
//! backoff, sleeping on Tokio's clock (so tests drive it with paused time).

use std::time::Duration;

use ao_core::retry::Retry;
pub use ao_core::retry::RetryPolicy;
use ao_core::runtime::{BoxError, RuntimeError};
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

/// Map an API failure for the scheduler: 429 → `Throttled` and other transient failures →
/// `Unavailable` (both requeue), else `other`.
/// The API error stays the source of the runtime error.
pub fn to_runtime(e: kube::Error, other: fn(BoxError) -> RuntimeError) -> RuntimeError {
    let transient = is_transient(&e);
    let throttled = matches!(&e, kube::Error::Api(s) if s.code == 429);
    let cause: BoxError = Box::new(KubeError::Api(e));
    if throttled {
        RuntimeError::Throttled(cause)
    } else if transient {
        RuntimeError::Unavailable(cause)
    } else {
        other(cause)
    }
}

/// What a failed API call says about retrying it, at the level of [`retry_api`]: a passing
/// failure (5xx, transport) after the backoff; a 429 never. The client has already retried a
/// 429 twice after its `Retry-After` ([`crate::client_retry`]); what is still throttled after
/// that goes back to its caller at once: the scheduler requeues the launch with the task's own
/// backoff, retries a stop on its next step, and cleanup comes round again. Retrying it here
/// too (4 more rounds of 3) held a launch, and so a whole scheduler step, for 20 s and more
/// under a squeeze.
pub fn classify(e: &kube::Error) -> Retry {
    match throttle_floor(e) {
        Some(_) => Retry::No,
        None if is_transient(e) => Retry::Backoff,
        None => Retry::No,
    }
}

/// When a throttled call may come back: the Status's `retryAfterSeconds`, or 1 s, the least
/// `Retry-After` API Priority and Fairness sends (its header is honoured by the client's own
/// retries and is gone by the time the error gets here).
pub fn throttle_floor(e: &kube::Error) -> Option<Duration> {
    match e {
        kube::Error::Api(s) if s.code == 429 => {
            let secs = s.details.as_ref().map_or(0, |d| d.retry_after_seconds);
            Some(Duration::from_secs(u64::from(secs.max(1))))
        }
        _ => None,
    }
}

/// Run the API write `f` for `task_id` under `policy` (core's [`RetryPolicy`]: a backoff of
/// its own per call, the server's date honoured).
pub async fn retry_api<T, F, Fut>(
    policy: &RetryPolicy,
    task_id: ao_core::task::TaskId,
    what: &str,
    f: F,
) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    policy
        .run(f, classify, |e, wait| {
            debug!(task_id = %task_id, what, error = %e, wait_ms = wait.as_millis() as u64, "transient API failure; retrying");
        })
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use ao_core::task::TaskId;
    use kube::core::Status;

    trait RunTest {
        async fn run_test<T, F, Fut>(&self, f: F) -> Result<T, kube::Error>
        where
            F: FnMut() -> Fut,
            Fut: std::future::Future<Output = Result<T, kube::Error>>;
    }

    impl RunTest for RetryPolicy {
        async fn run_test<T, F, Fut>(&self, f: F) -> Result<T, kube::Error>
        where
            F: FnMut() -> Fut,
            Fut: std::future::Future<Output = Result<T, kube::Error>>,
        {
            retry_api(self, TaskId::new(), "test", f).await
        }
    }

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
            ..RetryPolicy::default()
        };
        let calls = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let r: Result<(), _> = policy
            .run_test(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(api(503))
            })
            .await;
        assert!(matches!(r, Err(kube::Error::Api(s)) if s.code == 503));
        assert_eq!(calls.load(Ordering::SeqCst), 4, "four attempts in all");
        // 100 + 200 + 250 (capped) of virtual time, each with up to as much again of jitter.
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(550) && waited < Duration::from_millis(1_105),
            "{waited:?}"
        );

        calls.store(0, Ordering::SeqCst);
        let r: Result<(), _> = policy
            .run_test(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(api(409))
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a conflict is not retried");
    }

    /// A call still throttled after the client's own retries goes back to its caller at once
    /// (the scheduler requeues the launch with the task's backoff), so no 429 holds a step.
    #[tokio::test(start_paused = true)]
    async fn a_throttled_call_goes_back_to_its_caller_at_once() {
        let policy = RetryPolicy::default();
        let calls = AtomicU32::new(0);
        let start = tokio::time::Instant::now();
        let r: Result<(), _> = policy
            .run_test(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(api(429))
            })
            .await;
        assert!(matches!(r, Err(kube::Error::Api(s)) if s.code == 429));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(classify(&api(429)), Retry::No);
        assert_eq!(classify(&api(503)), Retry::Backoff);

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
        assert!(matches!(
            to_runtime(api(429), RuntimeError::Launch),
            RuntimeError::Throttled(_)
        ));
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
