//! The change feed across replicas: `LISTEN`/`NOTIFY`.
//!
//! A client following a task on replica A must wake when replica B writes to it, with no
//! polling. So every write that concerns a task calls `pg_notify` on [`CHANNEL`] inside its
//! own transaction: PostgreSQL delivers the notification only if and when that transaction
//! commits, so a follower that wakes reads what was written. The payload is
//! `origin:kind:ids`, where `kind` is `t` for a change to the task itself (created,
//! status, cancel flag, result: list followers care) or `o` for output only (log lines,
//! events), and `ids` is one task id or several separated by commas: an admission batch
//! (`admit`) announces all the tasks it created in one notification (or a few, as payloads
//! must stay under PostgreSQL's 8,000 bytes).
//!
//! Each store runs one listener task on a connection of its own, which feeds notifications
//! into the process-local [`ChangeFeed`]: [`ChangeFeed::notify_task`] for `t`,
//! [`ChangeFeed::notify`] for `o`. A store also wakes its local feed itself right after its
//! own commits (so a follower in the same process wakes at once), and the listener skips
//! notifications whose origin is this store, so one write never counts twice.
//!
//! Notifications sent while the listener's connection is down are lost. The listener
//! reconnects (with backoff, for as long as the store lives) and then wakes every follower
//! once ([`ChangeFeed::notify_all`]): followers re-read the store, so a missed notification
//! costs one re-read, never a stuck stream.
//!
//! Cost: PostgreSQL serializes the commits of notifying transactions (a commit holds the
//! notification queue's lock until it is durable), so every notifying transaction pays for
//! its own flush; that is the price of a notification that exists exactly when its write
//! does, and the reason admission batches its creates (`admit`).

use std::sync::Arc;
use std::time::Duration;

use ao_core::store::{ChangeFeed, StoreResult};
use ao_core::task::TaskId;
use backon::{ExponentialBuilder, Retryable};
use sqlx::PgConnection;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use tracing::{Instrument, debug, info, info_span, warn};

use crate::PgStore;
use crate::error::db_err;

/// The notification channel of task changes.
pub const CHANNEL: &str = "ao_task_changes";

/// The `application_name` of the listener's connection.
pub const LISTENER_APPLICATION_NAME: &str = "agent-orchestrator-listener";

/// What a write changed, as followers care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// The task itself: followers of the task and of the list wake.
    Task,
    /// Its output only: followers of the task wake.
    Output,
}

/// The most task ids in one payload: PostgreSQL refuses payloads of 8,000 bytes or more, and
/// each id takes 37 (with its comma) after the origin (32) and the kind.
const IDS_PER_PAYLOAD: usize = 200;

fn kind(change: Change) -> char {
    match change {
        Change::Task => 't',
        Change::Output => 'o',
    }
}

pub(crate) fn payload(origin: &str, change: Change, id: TaskId) -> String {
    format!("{origin}:{}:{id}", kind(change))
}

/// The payloads announcing `change` to every task of `ids`, as few as fit.
pub(crate) fn payloads(origin: &str, change: Change, ids: &[TaskId]) -> Vec<String> {
    ids.chunks(IDS_PER_PAYLOAD)
        .map(|chunk| {
            let list: Vec<String> = chunk.iter().map(TaskId::to_string).collect();
            format!("{origin}:{}:{}", kind(change), list.join(","))
        })
        .collect()
}

fn parse(payload: &str) -> Option<(&str, Change, Vec<TaskId>)> {
    let mut parts = payload.splitn(3, ':');
    let origin = parts.next()?;
    let change = match parts.next()? {
        "t" => Change::Task,
        "o" => Change::Output,
        _ => return None,
    };
    let ids = parts
        .next()?
        .split(',')
        .map(|id| id.parse().ok())
        .collect::<Option<Vec<TaskId>>>()?;
    Some((origin, change, ids))
}

/// Wake the local followers a notification concerns, unless this store sent it.
fn dispatch(feed: &ChangeFeed, own_origin: &str, raw: &str) {
    match parse(raw) {
        Some((origin, _, _)) if origin == own_origin => {}
        Some((_, Change::Task, ids)) => ids.into_iter().for_each(|id| feed.notify_task(id)),
        Some((_, Change::Output, ids)) => ids.into_iter().for_each(|id| feed.notify(id)),
        None => warn!(payload = raw, "ignored a malformed change notification"),
    }
}

impl PgStore {
    /// Queue the notification of `change` to task `id` in the open transaction on `conn`.
    pub(crate) async fn announce(
        &self,
        conn: &mut PgConnection,
        change: Change,
        id: TaskId,
    ) -> StoreResult<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload(&self.origin, change, id))
            .execute(conn)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Wake this process's followers after a committed write.
    pub(crate) fn woke(&self, change: Change, id: TaskId) {
        match change {
            Change::Task => self.changes.notify_task(id),
            Change::Output => self.changes.notify(id),
        }
    }
}

/// The listener task; stopped when the last clone of its store is dropped.
#[derive(Debug)]
pub(crate) struct ListenerHandle(tokio::task::JoinHandle<()>);

impl Drop for ListenerHandle {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connect the listener and start its task. `LISTEN` is in place when this returns, so no
/// write committed afterwards is missed.
pub(crate) async fn start(
    opts: &PgConnectOptions,
    feed: ChangeFeed,
    origin: Arc<str>,
) -> Result<ListenerHandle, sqlx::Error> {
    // A pool of one, only to reconnect: the listener keeps its connection for good.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with(opts.clone().application_name(LISTENER_APPLICATION_NAME));
    let listener = listen(&pool).await?;
    let span = info_span!("pg_listener", origin = %origin);
    let task = tokio::spawn(run(pool, listener, feed, origin).instrument(span));
    Ok(ListenerHandle(task))
}

async fn listen(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

async fn run(pool: PgPool, mut listener: PgListener, feed: ChangeFeed, origin: Arc<str>) {
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) => dispatch(&feed, &origin, n.payload()),
            Ok(None) => {
                // The driver reconnected and listens again; what was sent meanwhile is lost.
                warn!("the change-feed connection was lost and is back; waking every follower");
                feed.notify_all();
            }
            Err(e) => {
                warn!(error = %e, "the change-feed connection failed; reconnecting");
                drop(listener);
                listener = reconnect(&pool).await;
                info!("the change-feed connection is back; waking every follower");
                feed.notify_all();
            }
        }
    }
}

/// Listen again, retrying with backoff for as long as it takes (the store keeps serving
/// meanwhile; followers fall back on their own reads).
async fn reconnect(pool: &PgPool) -> PgListener {
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times();
    loop {
        let attempt = || listen(pool);
        let listener = attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .notify(|e, wait| {
                debug!(error = %e, retry_in_ms = wait.as_millis() as u64, "change-feed reconnect failed");
            })
            .await;
        match listener {
            Ok(l) => return l,
            // Only a bounded backoff gives up; start it afresh.
            Err(e) => warn!(error = %e, "the change-feed connection is still down"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_own_writes_are_skipped() {
        let id = TaskId::new();
        let raw = payload("me", Change::Output, id);
        assert_eq!(parse(&raw), Some(("me", Change::Output, vec![id])));
        assert_eq!(
            parse(&payload("x", Change::Task, id)),
            Some(("x", Change::Task, vec![id]))
        );
        assert_eq!(parse("x:q:nope"), None);
        assert_eq!(parse(&format!("x:t:{id},nope")), None);
        let feed = ChangeFeed::default();
        let sub = feed.subscribe(id);
        let list = feed.subscribe_list();
        dispatch(&feed, "me", &raw);
        assert!(!sub.has_changed(), "our own write woke us twice");
        dispatch(&feed, "other", &raw);
        assert!(sub.has_changed() && !list.has_changed());
        dispatch(&feed, "me", &payload("other", Change::Task, id));
        assert!(list.has_changed());
    }

    #[test]
    fn a_batch_is_announced_in_payloads_under_the_limit_that_wake_each_task() {
        let origin = uuid::Uuid::now_v7().simple().to_string();
        let ids: Vec<TaskId> = (0..2 * IDS_PER_PAYLOAD + 1)
            .map(|_| TaskId::new())
            .collect();
        let all = payloads(&origin, Change::Task, &ids);
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(|p| p.len() < 8000), "a payload too long");
        let parsed: Vec<TaskId> = all.iter().flat_map(|p| parse(p).unwrap().2).collect();
        assert_eq!(parsed, ids);
        let feed = ChangeFeed::default();
        let first = feed.subscribe(ids[0]);
        let last = feed.subscribe(ids[ids.len() - 1]);
        let list = feed.subscribe_list();
        all.iter().for_each(|p| dispatch(&feed, "other", p));
        assert!(first.has_changed() && last.has_changed() && list.has_changed());
    }
}
