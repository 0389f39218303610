//! Errors of the Kubernetes runtime, and how an API failure maps to what the scheduler does:
//! a passing failure (throttling, 5xx, unreachable) requeues the task; anything else fails
//! the launch.

use std::time::Duration;

use ao_core::runtime::RuntimeError;
use tracing::debug;

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error(
        "no Kubernetes configuration found: not in a cluster, no KUBECONFIG or ~/.kube/config, and AO_KUBECONFIG is not set"
    )]
    NoConfig,
    #[error("AO_KUBECONFIG is not a base64-encoded kubeconfig: {0}")]
    BadKubeconfig(String),
    #[error("Kubernetes client configuration failed: {0}")]
    Config(String),
    #[error("Kubernetes API request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("log stream broke: {0}")]
    LogStream(String),
    #[error("task store error: {0}")]
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
pub fn to_runtime(e: kube::Error, other: fn(String) -> RuntimeError) -> RuntimeError {
    if is_transient(&e) {
        RuntimeError::Unavailable(format!("Kubernetes API: {e}"))
    } else {
        other(format!("Kubernetes API: {e}"))
    }
}

/// How API writes (create/delete) are retried on transient failures.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
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
    /// Run `f` until it succeeds, fails for good, or the attempts run out.
    pub async fn run<T, F, Fut>(
        &self,
        task_id: ao_core::task::TaskId,
        what: &str,
        mut f: F,
    ) -> Result<T, kube::Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
    {
        let mut backoff = self.first_backoff;
        let mut attempt = 1;
        loop {
            match f().await {
                Err(e) if is_transient(&e) && attempt < self.attempts => {
                    debug!(task_id = %task_id, what, attempt, error = %e, backoff_ms = backoff.as_millis() as u64, "transient API failure; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.max_backoff);
                    attempt += 1;
                }
                r => return r,
            }
        }
    }
}
