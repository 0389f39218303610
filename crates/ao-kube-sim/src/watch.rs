//! Pod watches: newline-delimited `WatchEvent` JSON. A watch replays the retained history
//! after its `resourceVersion` (or, without one, the current pods as ADDED), then streams new
//! changes, with BOOKMARKs when allowed, until `timeoutSeconds`, a cut, or the client leaves.
//! A version older than the history, a forced fault, or a watch that falls too far behind
//! gets an ERROR event carrying a `410 Expired` Status, as the real API server sends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::WatchEvent;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::Sim;
use crate::selector::Selector;
use crate::state::{Change, ChangeKind};
use crate::status::{ApiError, status_json};

fn line(v: &impl serde::Serialize) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

fn event(kind: ChangeKind, pod: &Pod) -> Bytes {
    line(&match kind {
        ChangeKind::Added => WatchEvent::Added(pod),
        ChangeKind::Modified => WatchEvent::Modified(pod),
        ChangeKind::Deleted => WatchEvent::Deleted(pod),
    })
}

fn gone(rv: u64) -> Bytes {
    let status = ApiError::gone(format!("too old resource version: {rv}")).status();
    line(&serde_json::json!({"type": "ERROR", "object": status_json(&status)}))
}

/// k8s-openapi's bookmark omits `apiVersion`/`kind`, which clients expect: written by hand.
fn bookmark(rv: u64) -> Bytes {
    line(&serde_json::json!({
        "type": "BOOKMARK",
        "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"resourceVersion": rv.to_string()}}
    }))
}

fn matches(c: &Change, ns: &str, sel: &Selector) -> bool {
    c.namespace == ns && sel.matches(&c.pod)
}

pub fn watch(sim: Sim, ns: String, selector: Selector, q: &HashMap<String, String>) -> Response {
    let since = q
        .get("resourceVersion")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|v| *v != 0);
    let timeout = Duration::from_secs(
        q.get("timeoutSeconds")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(1800),
    );
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let (forced_gone, cut_after) = {
        let mut f = sim.faults();
        let g = f.gone_next_watches > 0;
        f.gone_next_watches = f.gone_next_watches.saturating_sub(1);
        (g, f.cut_watch_after)
    };
    let mut initial = Vec::new();
    let (rx, start_rv) = {
        let st = sim.lock();
        match since {
            Some(v) if forced_gone || v < st.oldest_resumable => initial.push(gone(v)),
            Some(v) => initial.extend(
                st.history
                    .iter()
                    .filter(|c| c.rv > v && matches(c, &ns, &selector))
                    .map(|c| event(c.kind, &c.pod)),
            ),
            None => initial.extend(
                st.pods
                    .iter()
                    .filter(|((n, _), r)| *n == ns && selector.matches(&r.pod))
                    .map(|(_, r)| event(ChangeKind::Added, &r.pod)),
            ),
        }
        (st.events.subscribe(), st.rv)
    };
    let expired = since.is_some()
        && (forced_gone
            || initial
                .first()
                .is_some_and(|b| b.starts_with(b"{\"type\":\"ERROR\"")));
    let (tx, body_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(256);
    let bookmark_every = sim.inner.cfg.bookmark_interval;
    tokio::spawn(async move {
        let mut sent = 0usize;
        let cut_reached = |n: usize| cut_after.is_some_and(|c| n >= c);
        for b in initial {
            if tx.send(Ok(b)).await.is_err() {
                return;
            }
            sent += 1;
            if cut_reached(sent) {
                return;
            }
        }
        if expired {
            return;
        }
        stream_changes(
            sim,
            tx,
            rx,
            Follow {
                ns,
                selector,
                start_rv,
                timeout,
                bookmarks,
                bookmark_every,
                sent,
                cut_after,
            },
        )
        .await;
    });
    let body = Body::from_stream(ReceiverStream::new(body_rx));
    ([(http::header::CONTENT_TYPE, "application/json")], body).into_response()
}

struct Follow {
    ns: String,
    selector: Selector,
    start_rv: u64,
    timeout: Duration,
    bookmarks: bool,
    bookmark_every: Duration,
    sent: usize,
    cut_after: Option<usize>,
}

async fn stream_changes(
    sim: Sim,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    mut rx: broadcast::Receiver<Arc<Change>>,
    mut f: Follow,
) {
    let mut cut = sim.inner.cut.subscribe();
    cut.borrow_and_update();
    let deadline = tokio::time::sleep(f.timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(f.bookmark_every);
    ticker.tick().await;
    let mut last_rv = f.start_rv;
    loop {
        let out = tokio::select! {
            _ = &mut deadline => return,
            _ = cut.changed() => return,
            _ = tx.closed() => return,
            _ = ticker.tick(), if f.bookmarks => bookmark(last_rv),
            msg = rx.recv() => match msg {
                Ok(c) if c.rv <= f.start_rv => continue,
                Ok(c) => {
                    last_rv = c.rv;
                    if !matches(&c, &f.ns, &f.selector) {
                        continue;
                    }
                    event(c.kind, &c.pod)
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = tx.send(Ok(gone(last_rv))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if tx.send(Ok(out)).await.is_err() {
            return;
        }
        f.sent += 1;
        if f.cut_after.is_some_and(|c| f.sent >= c) {
            return;
        }
    }
}
