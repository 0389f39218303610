//! Per-task launch backoff, and the deadline after which a launch that keeps failing ends its
//! task.
//!
//! Why per task: a launch the runtime refuses as unavailable (the API server throttles it,
//! or is down) goes back to the queue. If the whole queue waited for that one task's backoff,
//! one throttled launch would hold up every task behind it, and a backoff that only a
//! success resets would carry over from task to task. So each refused task waits out a
//! backoff of its own (1 s doubling to 4 s, plus up to as much again of jitter) and gives up
//! its turn meanwhile: the tasks behind it are launched first. Admission as a whole waits only briefly after a step
//! in which every launch was refused (see `Scheduler::admit`), so an API server that is
//! really down is not hammered by the whole queue, yet launches resume within a couple of
//! seconds once it answers.
//!
//! The state lives in memory: a restarted scheduler starts every task's backoff and deadline
//! afresh, which errs on the side of trying.

use std::collections::HashMap;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio::time::Instant;

use crate::task::TaskId;

/// How long a task waits after its first refused launch, and the most after later ones.
pub(super) const FIRST_WAIT: Duration = Duration::from_secs(1);
pub(super) const MAX_WAIT: Duration = Duration::from_secs(4);

/// The longest admission as a whole waits after a step whose launches were all refused.
pub(super) const MAX_GATE: Duration = Duration::from_secs(2);

/// Admission's own backoff while the runtime refuses every launch: 250 ms doubling to
/// [`MAX_GATE`]. Short on purpose: the per-task backoffs do the spreading.
pub(super) fn gate_backoff() -> ExponentialBackoff {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(MAX_GATE)
        .without_max_times()
        .build()
}

fn task_backoff() -> ExponentialBackoff {
    ExponentialBuilder::new()
        .with_min_delay(FIRST_WAIT)
        .with_max_delay(MAX_WAIT)
        .with_jitter()
        .without_max_times()
        .build()
}

/// One task's refused launches.
#[derive(Debug)]
struct Refused {
    /// When the first refused launch ended: the deadline counts from here.
    first: Instant,
    /// Not launched again before this.
    due: Instant,
    backoff: ExponentialBackoff,
}

/// How long a backing-off task has been due at `now` without being tried, beyond what a
/// launch and the loop's own wake-ups take ([`MAX_WAIT`]): time spent waiting for a slot.
fn waited_for_a_slot(r: &Refused, now: Instant) -> Duration {
    now.saturating_duration_since(r.due)
        .saturating_sub(MAX_WAIT)
}

/// The tasks whose last launch was refused, with when each may try again.
#[derive(Debug, Default)]
pub(super) struct LaunchBackoff {
    tasks: HashMap<TaskId, Refused>,
}

impl LaunchBackoff {
    /// Tasks backing off (queued, or settled since and not yet forgotten).
    pub(super) fn len(&self) -> usize {
        self.tasks.len()
    }

    /// True when `id` may be launched at `now`.
    pub(super) fn is_due(&self, id: TaskId, now: Instant) -> bool {
        self.tasks.get(&id).is_none_or(|r| r.due <= now)
    }

    /// Where the launch deadline of `id` counts from at `now`, if it had a refused launch:
    /// its first refusal, moved on by the time it was due but not tried (every slot busy), so
    /// that only time spent being refused counts.
    pub(super) fn first_refusal(&self, id: TaskId, now: Instant) -> Option<Instant> {
        self.tasks
            .get(&id)
            .map(|r| r.first + waited_for_a_slot(r, now))
    }

    /// `id`'s launch was refused at `now`: it waits its next backoff. Returns the wait.
    pub(super) fn refused(&mut self, id: TaskId, now: Instant) -> Duration {
        let r = self.tasks.entry(id).or_insert_with(|| Refused {
            first: now,
            due: now,
            backoff: task_backoff(),
        });
        r.first += waited_for_a_slot(r, now);
        let wait = r.backoff.next().unwrap_or(MAX_WAIT);
        r.due = now + wait;
        wait
    }

    /// `id` launched, failed for good, or left the queue: forget it.
    pub(super) fn forget(&mut self, id: TaskId) {
        self.tasks.remove(&id);
    }

    /// Keep only the tasks in `queued` (called when the whole queue was read).
    pub(super) fn retain_queued(&mut self, queued: &[TaskId]) {
        self.tasks.retain(|id, _| queued.contains(id));
    }

    /// The earliest time a backing-off task becomes due, for the loop's sleep.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.tasks.values().map(|r| r.due).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_task_backs_off_on_its_own_and_a_launch_forgets_it() {
        let t0 = Instant::now();
        let mut b = LaunchBackoff::default();
        let (a, c) = (TaskId::new(), TaskId::new());
        let w1 = b.refused(a, t0);
        assert!((FIRST_WAIT..=2 * FIRST_WAIT).contains(&w1), "{w1:?}");
        assert!(!b.is_due(a, t0));
        assert!(b.is_due(c, t0), "another task is not held up");
        let w2 = b.refused(a, t0 + w1);
        assert!(w2 >= 2 * FIRST_WAIT, "doubles: {w2:?}");
        assert_eq!(
            b.first_refusal(a, t0 + w1 + w2),
            Some(t0),
            "the deadline counts from the first"
        );
        for _ in 0..10 {
            assert!(b.refused(a, t0) <= 2 * MAX_WAIT);
        }
        b.forget(a);
        assert!(b.is_due(a, t0));
        let w = b.refused(a, t0);
        assert!(
            w <= 2 * FIRST_WAIT,
            "a fresh backoff after a success: {w:?}"
        );
        b.retain_queued(&[c]);
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn time_due_but_waiting_for_a_slot_does_not_count_towards_the_deadline() {
        let t0 = Instant::now();
        let mut b = LaunchBackoff::default();
        let a = TaskId::new();
        let w = b.refused(a, t0);
        // Due at t0 + w, but every slot stays busy for ten minutes.
        let tried = t0 + w + Duration::from_secs(600);
        let since = b.first_refusal(a, tried).unwrap();
        assert_eq!(since, t0 + Duration::from_secs(600) - MAX_WAIT);
        b.refused(a, tried);
        assert_eq!(
            b.first_refusal(a, tried),
            Some(since),
            "kept once refused again"
        );
    }

    #[test]
    fn the_gate_is_short() {
        let gate: Vec<u128> = gate_backoff().take(6).map(|d| d.as_millis()).collect();
        assert_eq!(gate, [250, 500, 1000, 2000, 2000, 2000]);
    }
}
