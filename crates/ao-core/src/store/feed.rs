//! The change feed: per-task wake-ups for followers of a task's output and status, and one
//! wake-up for followers of the task list.
//!
//! A follower (the `/logs?follow` and `/events` streams) holds a [`Subscription`] for one task
//! and re-reads the store when it changes, instead of polling. Writes to other tasks never wake
//! it. The feed keeps one `watch` channel per task that has subscribers; the channel is dropped
//! with its last subscription, so tasks nobody follows cost nothing.
//!
//! A follower of the list (the dashboard's tasks page) holds a [`ListSubscription`]: it fires
//! when any task is created or changes status or result ([`ChangeFeed::notify_task`]), not
//! for a task's output, so a busy agent's events don't wake it.
//!
//! The feed is in-process. A store shared by several orchestrator processes (PostgreSQL)
//! feeds it from the database's own notifications (`LISTEN`/`NOTIFY`) so that the contract of
//! [`crate::store::TaskStore::subscribe`] holds across processes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

use crate::task::TaskId;

type Senders = Arc<Mutex<HashMap<TaskId, watch::Sender<u64>>>>;

/// Lock the map whatever happened to an earlier holder. Every critical section is a single
/// insert, lookup or removal, so a panic elsewhere cannot leave the map half-updated and a
/// poisoned lock is safe to reuse: a follower never takes the process down.
fn lock(senders: &Senders) -> MutexGuard<'_, HashMap<TaskId, watch::Sender<u64>>> {
    senders.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Per-task change notifications, shared by a store and its subscribers.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    senders: Senders,
    /// Bumped by every change to a task itself (not its output).
    list: Arc<watch::Sender<u64>>,
}

impl Default for ChangeFeed {
    fn default() -> Self {
        ChangeFeed {
            senders: Senders::default(),
            list: Arc::new(watch::channel(0).0),
        }
    }
}

impl ChangeFeed {
    /// Follow one task. The subscription starts "seen": it fires on the next write.
    pub fn subscribe(&self, id: TaskId) -> Subscription {
        let rx = lock(&self.senders)
            .entry(id)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Subscription {
            id,
            rx,
            senders: self.senders.clone(),
        }
    }

    /// Wake the followers of `id`. Call it after the write is committed, so a follower that
    /// wakes up reads what was written.
    pub fn notify(&self, id: TaskId) {
        if let Some(tx) = lock(&self.senders).get(&id) {
            tx.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    /// Wake the followers of `id` and of the list: the task itself changed (created, new
    /// status, result). Call it after the write is committed.
    pub fn notify_task(&self, id: TaskId) {
        self.notify(id);
        self.list.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Wake every follower, of every task and of the list. For a feed fed from outside the
    /// process that may have missed changes (a lost database connection): followers re-read
    /// the store, so a spurious wake-up costs one read and a missed one is recovered.
    pub fn notify_all(&self) {
        for tx in lock(&self.senders).values() {
            tx.send_modify(|v| *v = v.wrapping_add(1));
        }
        self.list.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Follow the list: fires on the next [`ChangeFeed::notify_task`] of any task.
    pub fn subscribe_list(&self) -> ListSubscription {
        ListSubscription {
            rx: self.list.subscribe(),
        }
    }

    /// How many tasks have at least one subscriber (the size of the feed's table).
    pub fn followed(&self) -> usize {
        lock(&self.senders).len()
    }
}

/// A follower's handle on one task's changes. Dropping the last one for a task frees the
/// task's channel.
#[derive(Debug)]
pub struct Subscription {
    id: TaskId,
    rx: watch::Receiver<u64>,
    senders: Senders,
}

impl Subscription {
    /// The task this subscription follows.
    pub fn task_id(&self) -> TaskId {
        self.id
    }

    /// Wait until the task changes after the last [`Subscription::mark_seen`] (or since the
    /// subscription was made).
    pub async fn changed(&mut self) {
        // The sender lives in the map for as long as this subscription exists, so the
        // channel cannot close while we wait.
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Whether the task changed since the last [`Subscription::mark_seen`].
    pub fn has_changed(&self) -> bool {
        self.rx.has_changed().unwrap_or(false)
    }

    /// Count everything so far as seen; call it before re-reading the store.
    pub fn mark_seen(&mut self) {
        self.rx.borrow_and_update();
    }
}

/// A follower's handle on the task list's changes (any task created or changed).
#[derive(Debug)]
pub struct ListSubscription {
    rx: watch::Receiver<u64>,
}

impl ListSubscription {
    /// Wait until some task changes after the last [`ListSubscription::mark_seen`] (or since
    /// the subscription was made).
    pub async fn changed(&mut self) {
        // The feed (and its sender) outlives every subscription made from it.
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Whether some task changed since the last [`ListSubscription::mark_seen`].
    pub fn has_changed(&self) -> bool {
        self.rx.has_changed().unwrap_or(false)
    }

    /// Count everything so far as seen; call it before re-reading the store.
    pub fn mark_seen(&mut self) {
        self.rx.borrow_and_update();
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut senders = lock(&self.senders);
        // Our own receiver is still alive here, so "only us" is a count of one.
        if senders
            .get(&self.id)
            .is_some_and(|tx| tx.receiver_count() <= 1)
        {
            senders.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_wakes_only_the_followers_of_its_task() {
        let feed = ChangeFeed::default();
        let (a, b) = (TaskId::new(), TaskId::new());
        let mut sub_a = feed.subscribe(a);
        let sub_b = feed.subscribe(b);
        feed.notify(b);
        assert!(!sub_a.has_changed());
        assert!(sub_b.has_changed());
        feed.notify(a);
        assert!(sub_a.has_changed());
        sub_a.mark_seen();
        assert!(!sub_a.has_changed());
    }

    #[test]
    fn a_task_change_wakes_the_list_and_output_does_not() {
        let feed = ChangeFeed::default();
        let (a, b) = (TaskId::new(), TaskId::new());
        let mut list = feed.subscribe_list();
        let sub_a = feed.subscribe(a);
        feed.notify(a);
        assert!(!list.has_changed(), "output woke the list");
        assert!(sub_a.has_changed());
        feed.notify_task(b);
        assert!(list.has_changed());
        list.mark_seen();
        assert!(!list.has_changed());
    }

    #[test]
    fn notify_all_wakes_every_follower() {
        let feed = ChangeFeed::default();
        let (a, b) = (TaskId::new(), TaskId::new());
        let (sub_a, sub_b, list) = (feed.subscribe(a), feed.subscribe(b), feed.subscribe_list());
        feed.notify_all();
        assert!(sub_a.has_changed() && sub_b.has_changed() && list.has_changed());
    }

    #[test]
    fn the_last_subscription_frees_the_task_channel() {
        let feed = ChangeFeed::default();
        let id = TaskId::new();
        let first = feed.subscribe(id);
        let second = feed.subscribe(id);
        assert_eq!(feed.followed(), 1);
        drop(first);
        assert_eq!(feed.followed(), 1, "one subscriber remains");
        feed.notify(id);
        assert!(second.has_changed());
        drop(second);
        assert_eq!(feed.followed(), 0);
        // Writes to a task nobody follows keep nothing.
        feed.notify(id);
        assert_eq!(feed.followed(), 0);
    }

    #[test]
    fn a_poisoned_lock_does_not_break_the_feed() {
        let feed = ChangeFeed::default();
        let id = TaskId::new();
        let senders = feed.senders.clone();
        let _ = std::thread::spawn(move || {
            let _guard = senders.lock().unwrap();
            panic!("poison the lock");
        })
        .join();
        assert!(feed.senders.is_poisoned());
        let sub = feed.subscribe(id);
        feed.notify(id);
        assert!(sub.has_changed());
        drop(sub);
        assert_eq!(feed.followed(), 0);
    }

    #[tokio::test]
    async fn changed_resolves_after_a_notification() {
        let feed = ChangeFeed::default();
        let id = TaskId::new();
        let mut sub = feed.subscribe(id);
        let waiter = tokio::spawn(async move {
            sub.changed().await;
            sub.task_id()
        });
        tokio::task::yield_now().await;
        feed.notify(id);
        assert_eq!(waiter.await.unwrap(), id);
    }
}
