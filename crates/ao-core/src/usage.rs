//! Usage reports: finished tasks aggregated per UTC day (how many ended in each terminal
//! status, what they cost, how long they ran). The store only hands over the finished tasks
//! of a window ([`crate::store::TaskStore::finished_since`]); the arithmetic lives here, once,
//! for every backend and every reader (the dashboard's usage page and its header).

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::lifecycle::TaskStatus;
use crate::store::FinishedTask;

/// The terminal statuses, in the order reports show them.
pub const FINAL_STATUSES: [TaskStatus; 4] = [
    TaskStatus::Succeeded,
    TaskStatus::Failed,
    TaskStatus::Cancelled,
    TaskStatus::TimedOut,
];

/// One UTC day of finished tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct DayUsage {
    pub day: NaiveDate,
    /// Tasks that finished that day, per status of [`FINAL_STATUSES`] (same order).
    pub by_status: [u64; 4],
    /// Sum of the reported costs, in US dollars.
    pub cost_usd: f64,
    /// Run time (start to finish) percentiles of the day's tasks that started; `None` when
    /// none did.
    pub durations: Option<Percentiles>,
}

impl DayUsage {
    /// Tasks finished that day, whatever their status.
    pub fn finished(&self) -> u64 {
        self.by_status.iter().sum()
    }
}

/// Run-time percentiles, in seconds (nearest-rank).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples` (sorted here); `None` for no samples.
    pub fn of(samples: &mut [f64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            let n = samples.len();
            let i = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
            samples[i]
        };
        Some(Percentiles {
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
        })
    }
}

/// The first instant of `now`'s UTC day, `days - 1` days back: the window of a report of
/// `days` days ending today.
pub fn window_start(now: DateTime<Utc>, days: u32) -> DateTime<Utc> {
    let today = now.date_naive();
    let first = today - Duration::days(i64::from(days.max(1)) - 1);
    first
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc()
}

/// Aggregate `tasks` into one entry per day from `since`'s day to `now`'s day, empty days
/// included, oldest first. Tasks outside that range are ignored.
pub fn daily(tasks: &[FinishedTask], since: DateTime<Utc>, now: DateTime<Utc>) -> Vec<DayUsage> {
    let first = since.date_naive();
    let last = now.date_naive();
    let n = usize::try_from((last - first).num_days().max(0) + 1).unwrap_or(1);
    let mut days: Vec<DayUsage> = (0..n)
        .map(|i| DayUsage {
            day: first + Duration::days(i as i64),
            by_status: [0; 4],
            cost_usd: 0.0,
            durations: None,
        })
        .collect();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); n];
    for t in tasks {
        let offset = (t.finished_at.date_naive() - first).num_days();
        let Some(i) = usize::try_from(offset).ok().filter(|i| *i < n) else {
            continue;
        };
        let day = &mut days[i];
        if let Some(k) = FINAL_STATUSES.iter().position(|s| *s == t.status) {
            day.by_status[k] += 1;
        }
        day.cost_usd += t.cost_usd.unwrap_or(0.0);
        if let Some(start) = t.started_at {
            let secs = (t.finished_at - start).num_milliseconds().max(0) as f64 / 1000.0;
            samples[i].push(secs);
        }
    }
    for (day, s) in days.iter_mut().zip(samples.iter_mut()) {
        day.durations = Percentiles::of(s);
    }
    days
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::TaskId;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn done(status: TaskStatus, start: Option<&str>, end: &str, cost: Option<f64>) -> FinishedTask {
        FinishedTask {
            id: TaskId::new(),
            status,
            started_at: start.map(at),
            finished_at: at(end),
            cost_usd: cost,
        }
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut s: Vec<f64> = (1..=100).map(f64::from).collect();
        s.reverse();
        let p = Percentiles::of(&mut s).unwrap();
        assert_eq!((p.p50, p.p90, p.p99), (50.0, 90.0, 99.0));
        assert_eq!(Percentiles::of(&mut [7.0]).unwrap().p99, 7.0);
        assert!(Percentiles::of(&mut []).is_none());
    }

    #[test]
    fn days_are_contiguous_and_count_each_status() {
        let now = at("2026-03-03T12:00:00Z");
        let since = window_start(now, 3);
        assert_eq!(since, at("2026-03-01T00:00:00Z"));
        let tasks = [
            done(
                TaskStatus::Succeeded,
                Some("2026-03-01T10:00:00Z"),
                "2026-03-01T10:00:30Z",
                Some(0.5),
            ),
            done(
                TaskStatus::Failed,
                Some("2026-03-01T11:00:00Z"),
                "2026-03-01T11:01:00Z",
                None,
            ),
            done(TaskStatus::Cancelled, None, "2026-03-03T01:00:00Z", None),
            // Before the window: ignored.
            done(
                TaskStatus::Succeeded,
                None,
                "2026-02-28T23:59:59Z",
                Some(9.0),
            ),
        ];
        let days = daily(&tasks, since, now);
        assert_eq!(days.len(), 3);
        assert_eq!(days[0].by_status, [1, 1, 0, 0]);
        assert_eq!(days[0].cost_usd, 0.5);
        let p = days[0].durations.unwrap();
        assert_eq!((p.p50, p.p99), (30.0, 60.0));
        assert_eq!(days[1].finished(), 0);
        assert!(days[1].durations.is_none());
        assert_eq!(days[2].by_status, [0, 0, 1, 0]);
        assert!(days[2].durations.is_none(), "never started");
    }
}
