//! Time, injected, so that loops which wait on deadlines can be tested without waiting.
//!
//! A loop reads two clocks: a monotonic one for its own timers (stop grace, backoff, garbage
//! collection), as a [`tokio::time::Instant`], and the wall clock for the deadlines and
//! timestamps it stores, as a UTC time. [`Clock`] hands out both. Production uses
//! [`SystemClock`]. Tests use [`ManualClock`], which moves both together only when told to,
//! or [`TokioClock`], which follows tokio's clock, so `tokio::time::pause()` and `advance`
//! move the wall clock too.
//!
//! Why not always `tokio::time::pause()`: a paused runtime that has nothing to do jumps to
//! its next timer, and the SQLite store's connection pool keeps timers of its own (acquire
//! timeouts), which would fire while a query waits on the database thread. Tests that drive
//! the scheduler over a real store therefore use a [`ManualClock`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// The source of time for the scheduler (and any loop that wants testable time).
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Monotonic now, for timers.
    fn now(&self) -> Instant;
    /// Wall-clock now, for deadlines and recorded timestamps.
    fn now_utc(&self) -> DateTime<Utc>;
}

/// The real clocks: tokio's monotonic clock and the system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn now_utc(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until [`ManualClock::advance`] moves it. Clones share the time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    start: Instant,
    start_utc: DateTime<Utc>,
    /// Nanoseconds advanced since `start`.
    offset: AtomicU64,
}

impl ManualClock {
    /// A clock that starts at the current time.
    pub fn new() -> Self {
        ManualClock {
            inner: Arc::new(ManualInner {
                start: Instant::now(),
                start_utc: Utc::now(),
                offset: AtomicU64::new(0),
            }),
        }
    }

    /// Move both clocks forward by `d`.
    pub fn advance(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.inner.offset.fetch_add(nanos, Ordering::SeqCst);
    }

    fn offset(&self) -> Duration {
        Duration::from_nanos(self.inner.offset.load(Ordering::SeqCst))
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.inner.start + self.offset()
    }
    fn now_utc(&self) -> DateTime<Utc> {
        self.inner.start_utc + self.offset()
    }
}

/// A wall clock that follows tokio's clock from the moment it was made: under
/// `tokio::time::pause()`, `tokio::time::advance(d)` moves [`Clock::now_utc`] by `d` too.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start: Instant,
    start_utc: DateTime<Utc>,
}

impl TokioClock {
    pub fn new() -> Self {
        TokioClock {
            start: Instant::now(),
            start_utc: Utc::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn now_utc(&self) -> DateTime<Utc> {
        self.start_utc + self.start.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_it() {
        let c = ManualClock::new();
        let (t0, w0) = (c.now(), c.now_utc());
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!((c.now(), c.now_utc()), (t0, w0), "it stands still");
        c.clone().advance(Duration::from_secs(90));
        assert_eq!(c.now() - t0, Duration::from_secs(90));
        assert_eq!((c.now_utc() - w0).num_seconds(), 90);
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let c = TokioClock::new();
        let w0 = c.now_utc();
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!((c.now_utc() - w0).num_seconds(), 3600);
        assert!(SystemClock.now_utc() - c.now_utc() < chrono::Duration::seconds(-3000));
    }
}
