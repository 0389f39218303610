//! The orchestrator's side failing on the real API server (proof 7): a pod whose log stream
//! cannot be opened (its node serves no log endpoint, so `pods/log` fails at the API server),
//! and an orchestrator killed with `kill -9` while its pod runs. Requests are counted in the
//! API server's audit log.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::support::orchestrator::status_reason;
use crate::support::pods::{phase, wait_pod};
use crate::support::{ScriptWorld, script_world, shared_dir, wait_logged};

/// At most this many `pods/log` requests per pod: the first and `ao-runtime-kube`'s five
/// retries (`logs::LOG_RETRIES`), for the pod's whole life.
const LOG_REQUESTS_PER_POD: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_log_stream_is_retried_with_a_bounded_backoff() {
    let (cluster, orch) = script_world(ScriptWorld {
        prefix: "kp-nologs",
        secret: true,
        serve_logs: false,
        image: None,
        args: &[],
    })
    .await;
    let release = shared_dir("nologs").join("release");
    let id = orch
        .submit(json!({"prompt": "hold", "env": {"KP_MODE": "hold", "KP_RELEASE": release}}))
        .await;
    let pod = format!("claude-worker-{id}");
    let log_requests = || cluster.orchestrator_requests("get", "pods", Some("log"), Some(&pod));

    // The runtime asks for the log until its budget is spent (~15.5 s of pauses)... (The
    // audit log is read only after that: it is large and shared.)
    orch.wait_log_line(&id, "following the worker log failed", 90)
        .await;
    let failed = log_requests();
    assert!(failed.len() >= 2, "it retried: {failed:#?}");
    assert!(failed.iter().all(|e| e.code >= 500), "{failed:#?}");
    // ...with pauses that grow, not a busy loop.
    let times: Vec<DateTime<Utc>> = failed
        .iter()
        .map(|e| e.time.parse().expect("an RFC 3339 audit time"))
        .collect();
    let gaps: Vec<i64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).num_milliseconds())
        .collect();
    assert!(
        gaps.windows(2).all(|g| g[1] > g[0]) && gaps[0] >= 400 && gaps.last() > Some(&6_000),
        "pauses between pods/log requests (ms): {gaps:?}"
    );
    // The pod still runs and ends, and the task ends right through the watch.
    let t = orch.task(&id).await;
    assert_eq!(t["status"], "running", "{t:#}");
    std::fs::write(&release, "").expect("release the worker");
    let t = orch.wait_terminal(&id, 90).await;
    assert_eq!(status_reason(&t), ("succeeded", "completed"), "{t:#}");
    // Neither a restarted follower nor the final drain asked again.
    let all = log_requests();
    assert!(
        all.len() <= LOG_REQUESTS_PER_POD,
        "{} pods/log requests for one pod: {all:#?}",
        all.len()
    );
    drop(orch);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_orchestrator_adopts_its_running_pod_without_a_duplicate() {
    let (cluster, mut orch) = script_world(ScriptWorld {
        prefix: "kp-restart",
        secret: true,
        serve_logs: true,
        image: None,
        args: &[],
    })
    .await;
    let release = shared_dir("restart").join("release");
    let id = orch
        .submit(json!({"prompt": "hold", "env": {"KP_MODE": "hold", "KP_RELEASE": release}}))
        .await;
    wait_logged(&orch, &id, "holding", 90).await;
    let pod = format!("claude-worker-{id}");
    let pods = cluster.pods();

    // kill -9 while the pod runs; the pod runs on.
    orch.kill();
    let running = pods
        .get(&pod)
        .await
        .expect("the pod outlives the orchestrator");
    assert_eq!(phase(Some(&running)), Some("Running"));
    orch.restart();
    let t = orch.task(&id).await;
    assert_eq!(t["status"], "running", "adopted, still running: {t:#}");
    std::fs::write(&release, "").expect("release the worker");
    let t = orch.wait_terminal(&id, 90).await;
    assert_eq!(status_reason(&t), ("succeeded", "completed"), "{t:#}");
    wait_pod(&pods, &pod, 30, "Succeeded", |p| {
        phase(p) == Some("Succeeded")
    })
    .await;

    // One pod was ever created for the task, and its log was stored once, across the restart.
    let creates = cluster.orchestrator_requests("create", "pods", None, None);
    assert_eq!(creates.len(), 1, "pod creates: {creates:#?}");
    let logs = orch.logs(&id).await;
    for line in ["starts", "holding", "ends"] {
        assert_eq!(
            logs.lines().filter(|l| l.contains(line)).count(),
            1,
            "{line:?} once in the stored log:\n{logs}"
        );
    }
    drop(orch);
    cluster.shutdown().await;
}
