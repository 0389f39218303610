//! The scheduler's loop, one leadership term at a time.
//!
//! With one process ([`Leadership::Sole`]) there is one term, from start to shutdown. When
//! replicas share a database, only the replica holding the scheduler lease runs it
//! ([`crate::lease`]): a term begins when this replica comes to lead under a generation, with
//! the same recovery as after a restart (adopt, settle, requeue), and ends the moment it stops
//! leading. A deposed term begins nothing more and waits for nothing: the step in flight is
//! dropped, the runtime stops following the workers ([`Runtime::release_all`]) and the state
//! kept for the term is forgotten, since the next leader recovers it from the store. Its
//! writes in flight carry the old fence, so the store refuses them.
//!
//! While following, the runtime's events are read and dropped (the leader's recovery reads
//! the runtime's state afresh), so the channel does not grow.
//!
//! [`Runtime::release_all`]: crate::runtime::Runtime::release_all

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{Instrument, debug, info, warn};

use super::{Scheduler, recovery_backoff};
use crate::lease::{Fence, Leadership};

/// Why a term ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Shutdown,
    Deposed,
}

/// Resolves when leadership is no longer `fence`'s (never, once the elector is gone: a sole
/// scheduler's term lasts until shutdown).
async fn deposed(rx: &mut watch::Receiver<Leadership>, fence: Option<Fence>) {
    loop {
        if rx.borrow_and_update().leads() != Some(fence) {
            return;
        }
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Scheduler {
    /// Recover after a start, then step until `shutdown` resolves; with replicas
    /// ([`Scheduler::with_leadership`]), run a term each time this replica comes to lead.
    /// Running workers are left alone on shutdown, to be adopted by the next process.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let mut leadership = self.handle.leadership.clone();
        tokio::pin!(shutdown);
        loop {
            let Some(fence) = self.await_term(&mut leadership, &mut shutdown).await else {
                return;
            };
            self.begin_term(fence);
            self.metrics.scheduler_terms.inc();
            self.metrics.scheduler_leader.set(1);
            let stop = async {
                tokio::select! {
                    biased;
                    () = &mut shutdown => Stop::Shutdown,
                    () = deposed(&mut leadership, fence) => Stop::Deposed,
                }
            };
            let why = self.run_term(stop).await;
            self.metrics.scheduler_leader.set(0);
            if why == Stop::Shutdown {
                return;
            }
            warn!(
                generation = fence.map(|f| f.0),
                active = self.active.len(),
                "this replica no longer leads: the scheduler stops and leaves its workers to the next leader"
            );
            self.runtime.release_all().await;
            self.begin_term(None);
        }
    }

    /// Wait until this replica leads; `None` on shutdown.
    async fn await_term(
        &mut self,
        rx: &mut watch::Receiver<Leadership>,
        shutdown: &mut Pin<&mut impl Future<Output = ()>>,
    ) -> Option<Option<Fence>> {
        loop {
            let now = rx.borrow_and_update().clone();
            if let Some(fence) = now.leads() {
                return Some(fence);
            }
            tokio::select! {
                biased;
                () = shutdown.as_mut() => return None,
                changed = rx.changed() => if changed.is_err() {
                    shutdown.as_mut().await;
                    return None;
                },
                ev = self.events.recv() => match ev {
                    Some(ev) => debug!(task_id = %ev.task_id(), "runtime event while following; the leader handles it"),
                    None => { shutdown.as_mut().await; return None; }
                },
            }
        }
    }

    /// Forget what the last term knew and run under `fence` from now on.
    fn begin_term(&mut self, fence: Option<Fence>) {
        self.fence = fence;
        self.active.clear();
        self.set_aside.clear();
        self.publish_set_aside();
        self.gc_due.clear();
        self.last_gc_scan = None;
        self.launch_gate = None;
        self.refused = super::backoff::LaunchBackoff::default();
        self.stopping.store(false, Ordering::SeqCst);
    }

    /// Recover, then step until `stop` resolves.
    async fn run_term(&mut self, stop: impl Future<Output = Stop>) -> Stop {
        tokio::pin!(stop);
        let mut backoff = recovery_backoff();
        loop {
            let recovered = tokio::select! {
                biased;
                why = stop.as_mut() => return why,
                r = self.recover() => r,
            };
            match recovered {
                Ok(n) => {
                    info!(
                        looked_at = n,
                        set_aside = self.set_aside.len(),
                        generation = self.fence.map(|f| f.0),
                        "scheduler recovered state from the store"
                    );
                    break;
                }
                Err(e) => {
                    let wait = backoff.next().unwrap_or(Duration::from_secs(30));
                    warn!(error = %e, retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "recovery could not list the active tasks; retrying");
                    tokio::select! {
                        why = stop.as_mut() => return why,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        let notify = self.handle.notify.clone();
        // Replicas: submissions and cancels reach the store through any replica, so the
        // leader follows the store's task list (LISTEN/NOTIFY) besides its own API's pokes.
        let mut list = self.fence.map(|_| self.store.subscribe_list());
        let why = loop {
            if let Some(why) = self.step_until(&mut stop).await {
                break why;
            }
            let wait = self.next_wake();
            let listed = async {
                match list.as_mut() {
                    Some(l) => {
                        l.changed().await;
                        l.mark_seen();
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                why = stop.as_mut() => break why,
                ev = self.events.recv() => match ev {
                    Some(ev) => {
                        if let Some(why) = self.handle_event_until(ev, &mut stop).await {
                            break why;
                        }
                    }
                    None => { warn!("runtime event channel closed"); break Stop::Shutdown; }
                },
                _ = notify.notified() => {}
                () = listed => {}
                _ = tokio::time::sleep(wait) => {}
            }
        };
        info!(
            active = self.active.len(),
            "scheduler stopped; running workers are left to be adopted"
        );
        why
    }

    /// Handle one runtime event, watching `stop` meanwhile: a store that hangs (a partition)
    /// never keeps a deposed scheduler in its term. On shutdown the event is handled to the
    /// end (its writes are quick or fail); when deposed it is dropped, for the next leader's
    /// recovery to settle.
    async fn handle_event_until(
        &mut self,
        ev: crate::runtime::RuntimeEvent,
        stop: &mut Pin<&mut impl Future<Output = Stop>>,
    ) -> Option<Stop> {
        let task_id = ev.task_id();
        let span = tracing::info_span!("runtime_event", task_id = %task_id);
        let handled = self.handle_event(ev).instrument(span);
        tokio::pin!(handled);
        let result = tokio::select! {
            biased;
            why = stop.as_mut() => {
                if why == Stop::Deposed {
                    return Some(why);
                }
                let r = (&mut handled).await;
                if let Err(e) = r {
                    warn!(task_id = %task_id, error = %e, "handling a runtime event failed");
                }
                return Some(why);
            }
            r = &mut handled => r,
        };
        if let Err(e) = result {
            warn!(task_id = %task_id, error = %e, "handling a runtime event failed");
        }
        None
    }

    /// One step, watching `stop` meanwhile. On shutdown no launch begins any more and the
    /// step may finish what it does for [`super::SchedulerConfig::shutdown_grace`], then it is
    /// dropped (launches still in flight are left in `starting` for the next start's
    /// recovery). When deposed, the step is dropped at once. Returns why it stopped, if it did.
    async fn step_until(
        &mut self,
        stop: &mut Pin<&mut impl Future<Output = Stop>>,
    ) -> Option<Stop> {
        let stopping = self.stopping.clone();
        let grace = self.cfg.shutdown_grace;
        let tick = self.tick();
        tokio::pin!(tick);
        let (result, why) = tokio::select! {
            // Stopping first: a step that ends just as it is requested begins nothing more.
            biased;
            why = stop.as_mut() => {
                stopping.store(true, Ordering::SeqCst);
                if why == Stop::Deposed {
                    (None, Some(why))
                } else {
                    info!(grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX), "shutdown requested: no launch begins; waiting for the step in flight");
                    match tokio::time::timeout(grace, &mut tick).await {
                        Ok(r) => (Some(r), Some(why)),
                        Err(_) => {
                            warn!("the step did not finish within the shutdown grace; launches in flight are left for the next start to adopt");
                            (None, Some(why))
                        }
                    }
                }
            }
            r = &mut tick => (Some(r), None),
        };
        if let Some(Err(e)) = result {
            warn!(error = %e, "scheduler step failed");
        }
        why
    }
}
