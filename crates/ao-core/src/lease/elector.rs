//! The loop that keeps this replica's claim on the scheduler lease, as steps a test can drive.
//!
//! Each [`Elector::step`] makes one `acquire` (a grant or a renewal) and publishes the result
//! as a [`Leadership`] on a watch channel the scheduler follows. A leader renews every
//! [`ElectorConfig::renew_every`]; a follower tries as often, so it takes the lease over within
//! one try of its expiry. A leader that cannot renew (database down, partition, slow answers)
//! steps down on its own at `start of its last successful renewal + ttl - margin`: that is
//! before the database can let the lease go, because the database computed the expiry from a
//! "now" no earlier than that start. The step-down needs no answer from anyone.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{Fence, LeaseStore};
use crate::clock::Clock;

/// Whether this replica runs the scheduler, as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leadership {
    /// The only replica there can be (SQLite, one process): always leads, unfenced.
    Sole,
    /// Leads under this generation of the lease.
    Leader(Fence),
    /// Another replica leads (its id, when known), or nobody does right now.
    Follower { leader: Option<String> },
}

impl Leadership {
    /// Whether the scheduler runs here, and under which fence (`None` for [`Leadership::Sole`]).
    pub fn leads(&self) -> Option<Option<Fence>> {
        match self {
            Leadership::Sole => Some(None),
            Leadership::Leader(f) => Some(Some(*f)),
            Leadership::Follower { .. } => None,
        }
    }
}

/// Lease timings.
#[derive(Debug, Clone)]
pub struct ElectorConfig {
    /// Lease name in the database.
    pub name: String,
    /// This replica's id (unique per process).
    pub holder: String,
    /// How long a grant or renewal lasts. A dead leader is replaced within about
    /// `ttl + renew_every`.
    pub ttl: Duration,
    /// Time between renewals, and between a follower's tries.
    pub renew_every: Duration,
    /// How long before its lease could expire a leader that can't renew steps down.
    pub margin: Duration,
}

impl ElectorConfig {
    /// Timings derived from the lease duration: renew every fifth of it, step down with a
    /// fifth left.
    pub fn with_ttl(holder: impl Into<String>, ttl: Duration) -> Self {
        ElectorConfig {
            name: super::SCHEDULER_LEASE.to_string(),
            holder: holder.into(),
            ttl,
            renew_every: ttl / 5,
            margin: ttl / 5,
        }
    }
}

/// Seeks or keeps the lease; see the module docs.
pub struct Elector {
    store: Arc<dyn LeaseStore>,
    cfg: ElectorConfig,
    clock: Arc<dyn Clock>,
    tx: watch::Sender<Leadership>,
    /// While leading: the fence and the instant this replica must stop leading unless it
    /// renews first.
    leading: Option<(Fence, Instant)>,
}

impl Elector {
    pub fn new(store: Arc<dyn LeaseStore>, cfg: ElectorConfig, clock: Arc<dyn Clock>) -> Self {
        let (tx, _) = watch::channel(Leadership::Follower { leader: None });
        Elector {
            store,
            cfg,
            clock,
            tx,
            leading: None,
        }
    }

    /// Follow this replica's leadership.
    pub fn subscribe(&self) -> watch::Receiver<Leadership> {
        self.tx.subscribe()
    }

    pub fn config(&self) -> &ElectorConfig {
        &self.cfg
    }

    /// One try to take or renew the lease; publishes and returns the outcome.
    pub async fn step(&mut self) -> Leadership {
        let started = self.clock.now();
        // Nobody waits for an answer past the instant a grant made now would have to be given
        // up again: a leader its step-down instant, a follower that of a new grant.
        let fresh_until = started + self.cfg.ttl.saturating_sub(self.cfg.margin);
        let limit = match self.leading {
            Some((_, until)) => until.saturating_duration_since(started),
            None => fresh_until.saturating_duration_since(started),
        };
        let (name, holder) = (&self.cfg.name, &self.cfg.holder);
        let answer = tokio::time::timeout(limit, self.store.acquire(name, holder, self.cfg.ttl));
        match answer.await {
            // A grant that answered after its own step-down instant is no lead: the lease may
            // lapse any moment. The next step renews it (or a follower takes it over).
            Ok(Ok(lease)) if lease.held_by(holder) && self.clock.now() < fresh_until => {
                let until = fresh_until;
                if self.leading.map(|(f, _)| f) != Some(lease.generation) {
                    info!(generation = lease.generation.0, holder = %holder, "this replica now leads: the scheduler starts");
                }
                self.leading = Some((lease.generation, until));
                self.publish(Leadership::Leader(lease.generation));
            }
            Ok(Ok(lease)) if lease.held_by(holder) => {
                warn!(
                    generation = lease.generation.0,
                    "the lease was granted too late to lead on it; trying again"
                );
                self.expire();
            }
            Ok(Ok(lease)) => {
                if self.leading.take().is_some() {
                    warn!(leader = %lease.holder, "another replica holds the lease: this one steps down");
                }
                let leader = (lease.expires_at > lease.now).then_some(lease.holder);
                self.publish(Leadership::Follower { leader });
            }
            Ok(Err(e)) => {
                warn!(error = %e, leading = self.leading.is_some(), "the lease could not be taken or renewed");
                self.expire();
            }
            Err(_) => {
                warn!(
                    leading = self.leading.is_some(),
                    "the lease store did not answer in time"
                );
                self.expire();
            }
        }
        self.tx.borrow().clone()
    }

    /// Step down if the instant to do so has come.
    pub fn expire(&mut self) {
        if let Some((fence, until)) = self.leading
            && self.clock.now() >= until
        {
            warn!(
                generation = fence.0,
                "no renewal in time: this replica steps down before its lease can lapse"
            );
            self.leading = None;
            self.publish(Leadership::Follower { leader: None });
        }
    }

    fn publish(&self, l: Leadership) {
        self.tx.send_if_modified(|cur| {
            let changed = *cur != l;
            *cur = l;
            changed
        });
    }

    /// When the next step (or a step-down) is due.
    pub fn next_wake(&self) -> Instant {
        let next = self.clock.now() + self.cfg.renew_every;
        match self.leading {
            Some((_, until)) => next.min(until),
            None => next,
        }
    }

    /// Step until `stop` resolves, then give the lease up if this replica holds it, so the
    /// next leader need not wait for it to expire. Call it only once the scheduler has
    /// stopped.
    pub async fn run(mut self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                biased;
                () = &mut stop => break,
                _ = self.step() => {}
            }
            let wake = self.next_wake();
            tokio::select! {
                biased;
                () = &mut stop => break,
                () = tokio::time::sleep_until(wake) => self.expire(),
            }
        }
        if let Some((fence, _)) = self.leading.take() {
            self.publish(Leadership::Follower { leader: None });
            match self
                .store
                .release(&self.cfg.name, &self.cfg.holder, fence)
                .await
            {
                Ok(()) => info!(generation = fence.0, "lease released"),
                Err(e) => {
                    warn!(error = %e, "the lease could not be released; it expires on its own")
                }
            }
        }
    }
}
