//! Learning that a worker wrote output as it happens, instead of polling its log file.
//!
//! One inotify instance serves the whole runtime (the kernel limits instances per user to a
//! few hundred, but watches to many thousands): each followed task folder gets a watch, and a
//! dispatcher task wakes the follower of the folder an event names. A wake-up is a
//! [`Notify`] permit, so a write that lands while the follower is busy storing is never
//! missed: its next wait returns at once.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use tokio::sync::Notify;
use tracing::warn;

use crate::lock;

type Subscribers = HashMap<WatchDescriptor, (Arc<Notify>, usize)>;

/// The runtime's inotify instance and who waits on which watch.
pub(crate) struct DirWatcher {
    watches: Mutex<Watches>,
    pub(crate) subscribers: Arc<Mutex<Subscribers>>,
}

/// Wakes when files in one watched folder are created or written. Dropping it removes the
/// watch.
pub(crate) struct Subscription {
    watcher: Arc<DirWatcher>,
    wd: WatchDescriptor,
    notify: Arc<Notify>,
}

impl Subscription {
    /// Resolves once something was written since the last call (at once if it already was).
    pub(crate) async fn changed(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let last = {
            let mut subs = lock(&self.watcher.subscribers);
            match subs.get_mut(&self.wd) {
                Some((_, n)) if *n > 1 => {
                    *n -= 1;
                    false
                }
                _ => {
                    subs.remove(&self.wd);
                    true
                }
            }
        };
        if last {
            // Fails harmlessly when the folder is already gone (the kernel dropped the watch).
            let _ = lock(&self.watcher.watches).remove(self.wd.clone());
        }
    }
}

impl DirWatcher {
    /// Set up the inotify instance and its dispatcher. Needs a Tokio runtime.
    pub(crate) fn start() -> std::io::Result<Arc<Self>> {
        let mut stream = Inotify::init()?.into_event_stream(vec![0u8; 16 * 1024])?;
        let watcher = Arc::new(DirWatcher {
            watches: Mutex::new(stream.watches()),
            subscribers: Arc::new(Mutex::new(HashMap::new())),
        });
        let subs = watcher.subscribers.clone();
        tokio::spawn(async move {
            while let Some(ev) = stream.next().await {
                match ev {
                    // Events were dropped: wake everyone to look again.
                    Ok(ev) if ev.mask.contains(EventMask::Q_OVERFLOW) => {
                        lock(&subs).values().for_each(|(n, _)| n.notify_one());
                    }
                    Ok(ev) => {
                        if let Some((n, _)) = lock(&subs).get(&ev.wd) {
                            n.notify_one();
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "reading inotify events failed; output is no longer followed live");
                        break;
                    }
                }
            }
            // Followers must not wait for events that will never come.
            for (n, _) in lock(&subs).values() {
                n.notify_waiters();
                n.notify_one();
            }
        });
        Ok(watcher)
    }

    /// Watch `dir` for files created, written or closed in it.
    pub(crate) fn subscribe(self: &Arc<Self>, dir: &Path) -> std::io::Result<Subscription> {
        let mask =
            WatchMask::MODIFY | WatchMask::CLOSE_WRITE | WatchMask::CREATE | WatchMask::MOVED_TO;
        let wd = lock(&self.watches).add(dir, mask)?;
        let notify = {
            let mut subs = lock(&self.subscribers);
            let entry = subs
                .entry(wd.clone())
                .or_insert_with(|| (Arc::new(Notify::new()), 0));
            entry.1 += 1;
            entry.0.clone()
        };
        Ok(Subscription {
            watcher: self.clone(),
            wd,
            notify,
        })
    }
}
