//! The elector, stepped by hand over an in-memory lease table whose clock is tokio's (paused),
//! so lapses and step-downs happen by advancing time, not by waiting.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::*;
use crate::clock::{Clock, TokioClock};
use crate::store::{StoreError, StoreResult};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Answer,
    Fail,
    Hang,
}

/// One lease row, judged by the clock it is given.
#[derive(Debug)]
struct Table {
    clock: TokioClock,
    row: Mutex<Option<(String, i64, DateTime<Utc>)>>,
    mode: Mutex<Mode>,
}

impl Table {
    fn new(clock: TokioClock) -> Arc<Self> {
        Arc::new(Table {
            clock,
            row: Mutex::new(None),
            mode: Mutex::new(Mode::Answer),
        })
    }
    fn set(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }
}

#[async_trait]
impl LeaseStore for Table {
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<Lease> {
        let mode = *self.mode.lock().unwrap();
        match mode {
            Mode::Fail => return Err(StoreError::backend(std::io::Error::other("db down"))),
            Mode::Hang => std::future::pending::<()>().await,
            Mode::Answer => {}
        }
        let now = self.clock.now_utc();
        let mut row = self.row.lock().unwrap();
        let next = match row.clone() {
            None => (holder.to_string(), 1, now + ttl),
            Some((h, g, exp)) if h == holder && exp > now => (h, g, now + ttl),
            Some((_, g, exp)) if exp <= now => (holder.to_string(), g + 1, now + ttl),
            Some(kept) => kept,
        };
        *row = Some(next.clone());
        Ok(Lease {
            name: name.to_string(),
            holder: next.0,
            generation: Fence(next.1),
            expires_at: next.2,
            now,
        })
    }

    async fn release(&self, _: &str, holder: &str, generation: Fence) -> StoreResult<()> {
        let now = self.clock.now_utc();
        let mut row = self.row.lock().unwrap();
        if let Some((h, g, exp)) = row.as_mut()
            && h == holder
            && *g == generation.0
        {
            *exp = now;
        }
        Ok(())
    }
}

fn elector(table: &Arc<Table>, clock: TokioClock, holder: &str) -> Elector {
    let cfg = ElectorConfig::with_ttl(holder, Duration::from_secs(10));
    Elector::new(table.clone(), cfg, Arc::new(clock))
}

#[tokio::test(start_paused = true)]
async fn one_replica_leads_and_the_next_takes_over_within_ttl_plus_a_try() {
    let clock = TokioClock::new();
    let table = Table::new(clock);
    let (mut a, mut b) = (elector(&table, clock, "a"), elector(&table, clock, "b"));
    assert_eq!(a.step().await, Leadership::Leader(Fence(1)));
    assert_eq!(
        b.step().await,
        Leadership::Follower {
            leader: Some("a".into())
        }
    );
    // `a` dies: no more renewals. `b` keeps trying every 2 s and gets it once it lapses.
    let died = tokio::time::Instant::now();
    let took_over = loop {
        tokio::time::sleep_until(b.next_wake()).await;
        if let Leadership::Leader(f) = b.step().await {
            break (f, died.elapsed());
        }
    };
    assert_eq!(
        took_over.0,
        Fence(2),
        "a change of hands bumps the generation"
    );
    assert!(took_over.1 >= Duration::from_secs(10) && took_over.1 <= Duration::from_secs(12));
    // `a` wakes up late: it learns it was deposed, it does not lead again.
    assert!(matches!(a.step().await, Leadership::Follower { .. }));
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_cannot_renew_steps_down_before_its_lease_can_lapse() {
    for mode in [Mode::Fail, Mode::Hang] {
        let clock = TokioClock::new();
        let table = Table::new(clock);
        let mut a = elector(&table, clock, "a");
        let rx = a.subscribe();
        let granted = tokio::time::Instant::now();
        assert_eq!(a.step().await, Leadership::Leader(Fence(1)));
        table.set(mode);
        let stepped_down = loop {
            tokio::time::sleep_until(a.next_wake()).await;
            a.expire();
            if rx.borrow().leads().is_none() {
                break granted.elapsed();
            }
            a.step().await;
            if rx.borrow().leads().is_none() {
                break granted.elapsed();
            }
        };
        // ttl 10 s, margin 2 s: down at 8 s, while the table still says `a` holds it.
        assert_eq!(stepped_down, Duration::from_secs(8), "{mode:?}");
        let row = table.row.lock().unwrap().clone().unwrap();
        assert!(
            row.2 > clock.now_utc(),
            "{mode:?}: stepped down before the lapse"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn run_releases_the_lease_on_stop_so_the_next_replica_need_not_wait() {
    let clock = TokioClock::new();
    let table = Table::new(clock);
    let a = elector(&table, clock, "a");
    let mut rx = a.subscribe();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(a.run(async move {
        let _ = stop_rx.await;
    }));
    rx.wait_for(|l| l.leads().is_some()).await.unwrap();
    // Renewals keep it over several lease lengths.
    tokio::time::sleep(Duration::from_secs(35)).await;
    assert_eq!(*rx.borrow(), Leadership::Leader(Fence(1)));
    stop_tx.send(()).unwrap();
    run.await.unwrap();
    let mut b = elector(&table, clock, "b");
    assert_eq!(
        b.step().await,
        Leadership::Leader(Fence(2)),
        "granted at once"
    );
}

/// A lease store whose answers take `delay` (on tokio's paused clock).
struct Slow {
    inner: Arc<Table>,
    delay: Duration,
}

#[async_trait]
impl LeaseStore for Slow {
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<Lease> {
        let lease = self.inner.acquire(name, holder, ttl).await;
        tokio::time::sleep(self.delay).await;
        lease
    }
    async fn release(&self, name: &str, holder: &str, generation: Fence) -> StoreResult<()> {
        self.inner.release(name, holder, generation).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_grant_that_answers_after_its_step_down_instant_is_not_leadership() {
    let clock = TokioClock::new();
    let table = Table::new(clock);
    for (delay, leads) in [
        (Duration::from_millis(7_900), true),
        (Duration::from_millis(8_100), false),
    ] {
        let slow = Arc::new(Slow {
            inner: table.clone(),
            delay,
        });
        let cfg = ElectorConfig::with_ttl(
            format!("slow-{}", delay.as_millis()),
            Duration::from_secs(10),
        );
        let mut e = Elector::new(slow, cfg, Arc::new(clock));
        let got = e.step().await;
        assert_eq!(
            got.leads().is_some(),
            leads,
            "answer after {delay:?}: {got:?}"
        );
        // Let the grant lapse before the next case.
        tokio::time::sleep(Duration::from_secs(11)).await;
    }
}
