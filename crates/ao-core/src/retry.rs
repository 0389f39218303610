//! One retry policy for every call a server can throttle: the worker's callbacks to the
//! orchestrator and its GitHub calls, and the Kubernetes runtime's API writes (whose client
//! also retries a 429 itself with [`parse_retry_after`] and [`server_wait`], then hands what is
//! still throttled to the scheduler, which backs the task off on its own).
//!
//! Why one place: throttling is the server telling each request when to come back, and
//! Kubernetes' own clients honour it per request. Each copy of a hand-written loop got some of
//! that wrong (a backoff that never reset, a `Retry-After` that was ignored, or one that
//! was trusted for minutes). Here the rules are:
//! - A backoff belongs to one call: [`RetryPolicy::run`] builds it afresh, so a success (or
//!   another task's call) never inherits the waits of an earlier one.
//! - A failure the server dated (`Retry-After`, or Kubernetes' `retryAfterSeconds`) is retried
//!   after that wait plus a little jitter, and never sooner; the wait is capped
//!   ([`RetryPolicy::max_server_wait`]) because a caller that sleeps for the server's
//!   32 s holds up the work behind it, and the callers have their own longer loop (the
//!   scheduler requeues a launch with its own per-task backoff).
//! - Otherwise the wait grows exponentially from `first_backoff` to `max_backoff`, with jitter,
//!   so that many clients throttled at once do not come back in step.
//!
//! Sleeps run on Tokio's clock, so tests drive them with paused time.

use std::future::Future;
use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use rand::Rng;

/// What a failed call says about trying it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Not worth retrying (refused, invalid, not found…).
    No,
    /// Passing (a 5xx, a reset connection): after the policy's backoff.
    Backoff,
    /// Throttled, and the server said when to come back: after at least that long.
    After(Duration),
}

/// How a throttled or failing call is retried. `Copy`, so every caller holds its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// The first backoff when the server gave no date; it doubles from there.
    pub first_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// The longest wait for a server's `Retry-After`, whatever it says.
    pub max_server_wait: Duration,
    /// The most time spent waiting in all, if bounded by time rather than by tries.
    pub total_wait: Option<Duration>,
}

impl Default for RetryPolicy {
    /// 4 tries; 100 ms doubling to 2 s; a server's date is honoured up to 5 s.
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            max_server_wait: Duration::from_secs(5),
            total_wait: None,
        }
    }
}

impl RetryPolicy {
    /// The backoff of one call: exponential, jittered, at most `attempts - 1` retries.
    pub fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.first_backoff)
            .with_max_delay(self.max_backoff)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.attempts.saturating_sub(1) as usize)
            .with_total_delay(self.total_wait)
    }

    /// The wait before the next try, given what the failure says and what the backoff
    /// offers (`None` once the tries are spent, which ends the call whatever the server says).
    pub fn wait(&self, verdict: Retry, backoff: Option<Duration>) -> Option<Duration> {
        let backoff = backoff?;
        match verdict {
            Retry::No => None,
            Retry::Backoff => Some(backoff),
            Retry::After(server) => Some(server_wait(server, self.max_server_wait)),
        }
    }

    /// Runs `call` until it succeeds, fails for good (`classify` says [`Retry::No`]) or the
    /// tries run out; `notify` hears each failure that is retried, with the wait.
    pub async fn run<T, E, F, Fut>(
        &self,
        call: F,
        classify: impl Fn(&E) -> Retry,
        mut notify: impl FnMut(&E, Duration),
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        call.retry(self.backoff())
            .sleep(tokio::time::sleep)
            .when(|e| classify(e) != Retry::No)
            .adjust(|e, backoff| self.wait(classify(e), backoff))
            .notify(|e, wait| notify(e, wait))
            .await
    }
}

/// A server's wait plus up to a tenth more (so clients told the same second do not all come
/// back at once), never less than the server's, at most `cap`.
pub fn server_wait(server: Duration, cap: Duration) -> Duration {
    let server = server.min(cap);
    let spread = server / 10;
    let extra = if spread.is_zero() {
        Duration::ZERO
    } else {
        rand::rng().random_range(Duration::ZERO..=spread)
    };
    (server + extra).min(cap.max(server))
}

/// A `Retry-After` header value: delay-seconds, or an HTTP date (RFC 9110 §10.2.3) counted
/// from `now`. `None` when it is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = SystemTime::from(at);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
#[path = "retry_tests.rs"]
mod tests;
