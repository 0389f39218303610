//! The change feed crosses replicas: a client following a task's logs or events on one
//! replica sees what another replica wrote, as it is written (LISTEN/NOTIFY, no polling).

use std::time::Duration;

use ao_kube_sim::{Behaviour, Step};
use futures::StreamExt;
use serde_json::json;

use crate::cluster::{Cluster, NAMESPACE};

/// Read `resp`'s body until it contains `needle` (bounded); the text so far.
async fn read_until(resp: reqwest::Response, needle: &str) -> String {
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    let read = async {
        while let Some(chunk) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if seen.contains(needle) {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .unwrap_or_else(|_| panic!("never saw {needle:?}"));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_streams_what_the_leader_and_another_replica_write() {
    let db = ao_testkit::postgres::fresh_database().await;
    let script = Behaviour::Script(vec![
        Step::Log("first line".into()),
        Step::Sleep(Duration::from_millis(500)),
        Step::Log("second line".into()),
        Step::Hang,
    ]);
    let mut c = Cluster::new(db.url(), script).await;
    let a = c.start();
    assert_eq!(c.leader(&[&a]).await, 0);
    let (b, f) = (c.start(), c.start());
    let id = c.submit(&f, "followed").await;
    // Logs: written by the leader's log follower, streamed by the follower `f`.
    let logs = c
        .client
        .get(format!("{}/api/v1/tasks/{id}/logs?follow=true", f.base))
        .send()
        .await
        .unwrap();
    let seen = read_until(logs, "second line").await;
    assert!(seen.contains("first line"), "{seen}");

    // Events: posted by the worker to replica `b`, streamed by `f`.
    let events = c
        .client
        .get(format!("{}/api/v1/tasks/{id}/events", f.base))
        .send()
        .await
        .unwrap();
    let secret = c
        .sim
        .secrets(NAMESPACE)
        .into_iter()
        .find(|s| s.metadata.name.as_deref().is_some_and(|n| n.contains(&id)))
        .expect("the task's token Secret");
    let token = secret
        .string_data
        .as_ref()
        .and_then(|d| d.get("token").cloned())
        .or_else(|| {
            let bytes = secret.data.as_ref()?.get("token")?;
            Some(String::from_utf8(bytes.0.clone()).unwrap())
        });
    let token = token.expect("a token in the Secret");
    let batch = json!({ "first_seq": 1, "events": [{ "type": "system", "subtype": "init", "session_id": "cross-replica" }] });
    let posted = c
        .client
        .post(format!("{}/api/v1/tasks/{id}/worker/events", b.base))
        .bearer_auth(&token)
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert!(
        posted.status().is_success(),
        "{}",
        posted.text().await.unwrap()
    );
    let seen = read_until(events, "cross-replica").await;
    assert!(seen.contains("init"), "{seen}");
    drop((a, b));
}
