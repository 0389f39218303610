//! The retry policy on Tokio's paused clock: a server's date is honoured (never sooner, a
//! little later, capped), the backoff grows and is jittered, and it belongs to one call.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::*;

#[derive(Debug, Clone, PartialEq)]
enum Fail {
    Throttled(u64),
    Passing,
    Refused,
}

fn classify(e: &Fail) -> Retry {
    match e {
        Fail::Throttled(s) => Retry::After(Duration::from_secs(*s)),
        Fail::Passing => Retry::Backoff,
        Fail::Refused => Retry::No,
    }
}

/// The moments (since `start`) at which `fails` failures then a success were tried.
async fn tries(policy: RetryPolicy, fails: Vec<Fail>) -> (Result<(), Fail>, Vec<Duration>) {
    let start = Instant::now();
    let at = Mutex::new(Vec::new());
    let left = Mutex::new(fails.into_iter());
    let r = policy
        .run(
            || async {
                at.lock().unwrap().push(start.elapsed());
                match left.lock().unwrap().next() {
                    Some(f) => Err(f),
                    None => Ok(()),
                }
            },
            classify,
            |_, _| {},
        )
        .await;
    (r, at.into_inner().unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_429_with_retry_after_1_is_retried_after_1_s_and_a_little_jitter() {
    let (r, at) = tries(RetryPolicy::default(), vec![Fail::Throttled(1)]).await;
    assert!(r.is_ok());
    let gap = at[1] - at[0];
    assert!(
        gap >= Duration::from_secs(1) && gap <= Duration::from_millis(1_101),
        "retried after {gap:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_long_retry_after_is_capped() {
    let policy = RetryPolicy::default();
    let (r, at) = tries(policy, vec![Fail::Throttled(32)]).await;
    assert!(r.is_ok());
    assert!(at[1] - at[0] <= policy.max_server_wait + Duration::from_millis(1));
    assert!(at[1] - at[0] >= policy.max_server_wait);
}

#[tokio::test(start_paused = true)]
async fn passing_failures_back_off_exponentially_with_jitter_then_give_up() {
    let policy = RetryPolicy {
        attempts: 4,
        first_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(400),
        max_server_wait: Duration::from_secs(5),
        total_wait: None,
    };
    let (r, at) = tries(policy, vec![Fail::Passing; 10]).await;
    assert_eq!(r, Err(Fail::Passing));
    assert_eq!(at.len(), 4, "four tries in all: {at:?}");
    // Jitter adds up to the delay itself: 100..200, 200..400, 400..800 ms.
    let gaps: Vec<u128> = at.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect();
    for (gap, base) in gaps.iter().zip([100u128, 200, 400]) {
        assert!(
            (base..=2 * base + 1).contains(gap),
            "gaps {gaps:?} (base {base})"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_refusal_is_not_retried() {
    let (r, at) = tries(RetryPolicy::default(), vec![Fail::Refused]).await;
    assert_eq!(r, Err(Fail::Refused));
    assert_eq!(at.len(), 1);
}

/// The backoff belongs to one call: after three failures and a success, the next call's
/// first retry waits the first backoff again, not the fourth.
#[tokio::test(start_paused = true)]
async fn a_success_resets_the_backoff() {
    let policy = RetryPolicy {
        attempts: 10,
        first_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(10),
        max_server_wait: Duration::from_secs(5),
        total_wait: None,
    };
    let (r, first) = tries(policy, vec![Fail::Passing; 3]).await;
    assert!(r.is_ok());
    assert!(first[3] - first[2] >= Duration::from_millis(400));
    let (r, next) = tries(policy, vec![Fail::Passing]).await;
    assert!(r.is_ok());
    let gap = next[1] - next[0];
    assert!(gap <= Duration::from_millis(201), "{gap:?}");
}

/// Two calls throttled at once wait each for their own date: one told 3 s does not delay
/// the other, told 1 s.
#[tokio::test(start_paused = true)]
async fn another_calls_backoff_does_not_delay_this_one() {
    let policy = RetryPolicy::default();
    let calls = AtomicU32::new(0);
    let slow = tries(policy, vec![Fail::Throttled(3), Fail::Throttled(3)]);
    let fast = async {
        calls.fetch_add(1, Ordering::SeqCst);
        tries(policy, vec![Fail::Throttled(1)]).await
    };
    let ((_, slow_at), (fast_r, fast_at)) = tokio::join!(slow, fast);
    assert!(fast_r.is_ok());
    assert!(fast_at[1] < Duration::from_millis(1_101), "{fast_at:?}");
    assert!(slow_at[2] >= Duration::from_secs(6), "{slow_at:?}");
}

#[test]
fn retry_after_is_seconds_or_an_http_date() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777); // 1994-11-06 08:49:37Z
    assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
    assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
        Some(Duration::from_secs(10))
    );
    // A date in the past: retry now.
    assert_eq!(
        parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon", now), None);
    assert_eq!(parse_retry_after("-1", now), None);
}

#[test]
fn a_server_wait_is_never_shorter_than_asked_and_at_most_the_cap() {
    for _ in 0..200 {
        let w = server_wait(Duration::from_secs(1), Duration::from_secs(5));
        assert!(w >= Duration::from_secs(1) && w <= Duration::from_millis(1_100));
        let w = server_wait(Duration::from_secs(30), Duration::from_secs(5));
        assert_eq!(w, Duration::from_secs(5));
        assert_eq!(
            server_wait(Duration::ZERO, Duration::from_secs(5)),
            Duration::ZERO
        );
    }
}
