//! One pod follower per followed task: it receives its pod's changes from the watch, starts
//! following the log once the container runs, fails pods stuck pulling their image,
//! unschedulable, or whose container configuration cannot be built (a missing Secret) for
//! too long, and sends exactly one terminal event — after the log is
//! drained into the store — then stops following the task. A log follower that ended while
//! the pod runs is restarted, within the pod's one log retry budget ([`crate::logs`]), so an
//! unreachable log endpoint never turns into a request loop.
//!
//! (Not called a supervisor: `agent-orchestrator supervise` is the local runtime's process
//! supervisor, and `serve`'s `wait_for_tasks` watches the long-lived tasks.)

use std::sync::Arc;
use std::time::Duration;

use ao_core::lifecycle::Reason;
use ao_core::output::WorkerOutput;
use ao_core::runtime::ExitInfo;
use ao_core::task::TaskId;
use k8s_openapi::api::core::v1::Pod;
use kube::api::DeleteParams;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config::KubeConfig;
use crate::error::{KubeError, is_not_found};
use crate::logs::LogRetry;
use crate::pod::pod_name;
use crate::podstate::{PodState, Stuck, classify, container_started, deleting};
use crate::runtime::Inner;

/// What the watch (and the runtime's own calls) know about a followed task's pod.
#[derive(Debug, Clone, Default)]
pub(crate) struct Seen {
    pub pod: Option<Arc<Pod>>,
    /// The pod object is gone.
    pub deleted: bool,
    /// The orchestrator itself deleted the pod (stop, cleanup, or a stuck pod).
    pub stop_requested: bool,
    /// The create call returned: the pod exists (or existed).
    pub created: bool,
}

enum Outcome {
    Exited(ExitInfo),
    Lost(String),
}

/// A follower ended cleanly this long before the pod finished: drain the log once more.
const LATE_FINISH: Duration = Duration::from_secs(2);
/// A follower that ended while the pod still runs is restarted after this pause.
const FOLLOW_RESTART: Duration = Duration::from_secs(5);

pub(crate) fn spawn(inner: Arc<Inner>, task_id: TaskId, rx: watch::Receiver<Seen>) {
    let cancel = inner.cancel.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = follow(inner, task_id, rx) => {}
        }
    });
}

fn spawn_follow(
    inner: &Arc<Inner>,
    task_id: TaskId,
    output: WorkerOutput,
    retry: Arc<LogRetry>,
) -> JoinHandle<Result<(), KubeError>> {
    let inner = inner.clone();
    let cancel = inner.cancel.clone();
    tokio::spawn(async move {
        let name = pod_name(task_id);
        tokio::select! {
            _ = cancel.cancelled() => Ok(()),
            r = crate::logs::follow_with(&inner, task_id, &name, &output, &retry) => r,
        }
    })
}

async fn follow(inner: Arc<Inner>, task_id: TaskId, mut rx: watch::Receiver<Seen>) {
    let cfg = &inner.cfg;
    // Every follower of this pod feeds the same output, which reports the end last.
    let output = crate::logs::open(&inner, task_id);
    // One retry budget for the pod's log, across every follower of it.
    let retry = Arc::new(LogRetry::new());
    let mut follower: Option<JoinHandle<Result<(), KubeError>>> = None;
    // When the last follower ended, and whether it reached the end of the log cleanly.
    let mut follower_ended: Option<(Instant, bool)> = None;
    // Since when the pod has been stuck, and how (a change of cause restarts the clock).
    let mut stuck_since: Option<(StuckKind, Instant)> = None;
    let outcome = loop {
        let seen = rx.borrow_and_update().clone();
        let mut wake: Option<Instant> = None;
        if let Some(pod) = seen.pod.as_deref() {
            let restart_due = follower_ended.is_none_or(|(t, _)| t.elapsed() >= FOLLOW_RESTART);
            let state = classify(pod);
            if container_started(pod) && follower.is_none() && !seen.deleted && !retry.exhausted() {
                if restart_due && state == PodState::Running {
                    debug!(task_id = %task_id, "following the worker log");
                    follower = Some(spawn_follow(&inner, task_id, output.clone(), retry.clone()));
                } else if let Some((t, _)) = follower_ended.filter(|_| state == PodState::Running) {
                    wake = Some(t + FOLLOW_RESTART);
                }
            }
            match state {
                PodState::Finished(_) if deleting(pod) && !seen.stop_requested => {
                    break Outcome::Lost("the worker pod was deleted by someone else".into());
                }
                PodState::Finished(exit) => break Outcome::Exited(exit),
                PodState::Pending { stuck: Some(stuck) } if !seen.deleted => {
                    let (kind, limit, reason, msg) = stuck_limit(cfg, stuck);
                    let since = match stuck_since {
                        Some((k, t)) if k == kind => t,
                        _ => {
                            info!(task_id = %task_id, reason, detail = %msg, "worker pod is not starting");
                            stuck_since = Some((kind, Instant::now()));
                            Instant::now()
                        }
                    };
                    if since.elapsed() >= limit {
                        warn!(task_id = %task_id, reason, "giving up on the worker pod");
                        delete_stuck(&inner, task_id, &rx).await;
                        let exit = ExitInfo {
                            reason: Some(Reason::Other(reason.into())),
                            message: Some(msg),
                            ..Default::default()
                        };
                        break Outcome::Exited(exit);
                    }
                    wake = Some(since + limit);
                }
                _ => stuck_since = None,
            }
        }
        if seen.deleted {
            break if seen.stop_requested {
                let exit = seen
                    .pod
                    .as_deref()
                    .map(crate::podstate::exit_info)
                    .unwrap_or_default();
                Outcome::Exited(ExitInfo {
                    message: exit
                        .message
                        .or_else(|| Some("the worker pod was deleted".into())),
                    ..exit
                })
            } else {
                Outcome::Lost("the worker pod was deleted before it finished".into())
            };
        }
        let far = Instant::now() + Duration::from_secs(86_400);
        tokio::select! {
            // Released (this replica stopped leading): the next leader follows the pod.
            changed = rx.changed() => if changed.is_err() {
                if let Some(h) = follower.take() {
                    h.abort();
                }
                return;
            },
            _ = tokio::time::sleep_until(wake.unwrap_or(far)) => {}
            r = async { follower.as_mut().expect("guarded").await }, if follower.is_some() => {
                follower = None;
                let clean = matches!(r, Ok(Ok(())));
                if let Ok(Err(e)) = &r {
                    warn!(task_id = %task_id, error = %e, "following the worker log failed");
                }
                follower_ended = Some((Instant::now(), clean));
            }
        }
    };
    let ended = Ended {
        follower,
        follower_ended,
        outcome,
        retry,
    };
    finish(&inner, task_id, &rx, ended, output).await;
}

/// How the follow loop ended.
struct Ended {
    follower: Option<JoinHandle<Result<(), KubeError>>>,
    follower_ended: Option<(Instant, bool)>,
    outcome: Outcome,
    /// The pod's log retry budget (the last drain spends from it too).
    retry: Arc<LogRetry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StuckKind {
    ImagePull,
    Unschedulable,
    Config,
}

/// How long a stuck pod is given, and the failure reason it gets when that runs out.
fn stuck_limit(cfg: &KubeConfig, stuck: Stuck) -> (StuckKind, Duration, &'static str, String) {
    match stuck {
        Stuck::ImagePull(m) => (
            StuckKind::ImagePull,
            cfg.image_pull_limit,
            "image_pull_failed",
            m,
        ),
        Stuck::Unschedulable(m) => (
            StuckKind::Unschedulable,
            cfg.unschedulable_limit,
            "unschedulable",
            m,
        ),
        Stuck::Config(m) => (
            StuckKind::Config,
            cfg.config_error_limit,
            "worker_config_error",
            m,
        ),
    }
}

/// Delete a pod that will never start; its DELETED event then means nothing.
async fn delete_stuck(inner: &Inner, task_id: TaskId, rx: &watch::Receiver<Seen>) {
    if let Some(tx) = inner.tracked.lock().get(&task_id) {
        tx.send_modify(|s| s.stop_requested = true);
    }
    let _ = rx;
    let name = pod_name(task_id);
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    match crate::error::retry_api(&inner.cfg.retry, task_id, "delete pod", || {
        inner.pods.delete(&name, &dp)
    })
    .await
    {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => {
            warn!(task_id = %task_id, error = %e, "deleting the stuck pod failed; cleanup will retry")
        }
    }
}

/// Drain the log, stop following, and send the one terminal event through the output (which
/// sends it once the log is stored).
async fn finish(
    inner: &Arc<Inner>,
    task_id: TaskId,
    rx: &watch::Receiver<Seen>,
    ended: Ended,
    output: WorkerOutput,
) {
    let Ended {
        follower,
        follower_ended,
        outcome,
        retry,
    } = ended;
    let seen = rx.borrow().clone();
    let drain = inner.cfg.log_drain_timeout;
    if let Some(mut h) = follower {
        if tokio::time::timeout(drain, &mut h).await.is_err() {
            warn!(task_id = %task_id, "the worker log did not end in time; reporting the exit anyway");
            h.abort();
        }
    } else {
        let started = seen.pod.as_deref().is_some_and(container_started);
        let drained = follower_ended.is_some_and(|(t, clean)| clean && t.elapsed() < LATE_FINISH);
        if started && !drained && !seen.deleted && !retry.exhausted() {
            let name = pod_name(task_id);
            let drained = crate::logs::follow_with(inner, task_id, &name, &output, &retry);
            match tokio::time::timeout(drain, drained).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    warn!(task_id = %task_id, error = %e, "reading the worker log failed")
                }
                Err(_) => warn!(task_id = %task_id, "the worker log did not end in time"),
            }
        }
    }
    inner.tracked.lock().remove(&task_id);
    let sent = match outcome {
        Outcome::Exited(exit) => {
            info!(task_id = %task_id, code = ?exit.code, reason = ?exit.reason, "worker pod finished");
            output.exited(exit).await
        }
        Outcome::Lost(message) => {
            warn!(task_id = %task_id, %message, "worker pod lost");
            output.lost(message).await
        }
    };
    if let Err(e) = sent {
        warn!(task_id = %task_id, error = %e, "the worker's output is incomplete");
    }
}
