//! The simulated kubelet: one task per pod that moves it Pending → Running →
//! Succeeded/Failed as its [`Behaviour`] says, holds it in `CreateContainerConfigError` while
//! a Secret its environment needs is missing (retrying, as the kubelet does), enforces `activeDeadlineSeconds`, honours
//! deletion (stop the container within the grace period, then remove the object) and writes
//! the container's output to the pod log.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Pod, PodCondition,
};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::Sim;
use crate::logs::LogBuf;
use crate::objects::{mutate_pod, now, remove_pod, secret_value};

/// One step of a scripted container.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Write a line to the log.
    Log(String),
    Sleep(Duration),
    /// Exit with this code (the script ends).
    Exit(i32),
    /// Killed by the OOM killer (exit 137, reason `OOMKilled`).
    OomKill,
    /// Never exit on its own.
    Hang,
}

/// What a pod's container does.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// Run these steps; a script without an exit step exits 0.
    Script(Vec<Step>),
    /// The image never pulls (`ErrImagePull`, then `ImagePullBackOff` forever).
    ImagePullBackOff,
    /// No node fits (`PodScheduled=False`, reason `Unschedulable`) forever.
    Unschedulable,
    /// Run the container's command as a local process (see `SimConfig::programs`).
    Process,
}

impl Behaviour {
    /// Exit with `code` after `after`.
    pub fn exit(code: i32, after: Duration) -> Self {
        Behaviour::Script(vec![Step::Sleep(after), Step::Exit(code)])
    }
    /// Print `lines`, then exit with `code`.
    pub fn logs_then_exit(lines: &[&str], code: i32) -> Self {
        let mut s: Vec<Step> = lines.iter().map(|l| Step::Log(l.to_string())).collect();
        s.push(Step::Exit(code));
        Behaviour::Script(s)
    }
    /// Run until deleted.
    pub fn forever() -> Self {
        Behaviour::Script(vec![Step::Hang])
    }
}

/// How the container ended.
pub(crate) struct End {
    code: i32,
    reason: &'static str,
    pod_reason: Option<(&'static str, &'static str)>,
}

fn set_container(pod: &mut Pod, state: ContainerState, ready: bool) {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .map(|c| c.name.clone())
        .unwrap_or_else(|| "worker".into());
    let image = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let status = pod.status.get_or_insert_with(Default::default);
    status.container_statuses = Some(vec![ContainerStatus {
        name,
        image,
        image_id: String::new(),
        ready,
        restart_count: 0,
        started: Some(state.running.is_some()),
        state: Some(state),
        ..Default::default()
    }]);
}

fn condition(
    type_: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.map(Into::into),
        message: message.map(Into::into),
        last_transition_time: Some(now()),
        ..Default::default()
    }
}

/// Wait for a deletion request; returns its grace period.
async fn killed(kill: &mut watch::Receiver<Option<i64>>) -> i64 {
    loop {
        if let Some(g) = *kill.borrow_and_update() {
            return g;
        }
        if kill.changed().await.is_err() {
            // The object is gone.
            return 0;
        }
    }
}

pub async fn run(
    sim: Sim,
    ns: String,
    name: String,
    behaviour: Behaviour,
    mut kill: watch::Receiver<Option<i64>>,
    logs: Arc<LogBuf>,
) {
    let deadline_unit = sim.inner.cfg.deadline_unit;
    if behaviour == Behaviour::Unschedulable {
        mutate_pod(&sim, &ns, &name, |p| {
            let s = p.status.get_or_insert_with(Default::default);
            s.conditions = Some(vec![condition(
                "PodScheduled",
                "False",
                Some("Unschedulable"),
                Some("0/3 nodes are available: 3 Insufficient cpu."),
            )]);
        });
        killed(&mut kill).await;
        return remove_pod(&sim, &ns, &name);
    }
    mutate_pod(&sim, &ns, &name, |p| {
        let s = p.status.get_or_insert_with(Default::default);
        s.conditions = Some(vec![condition("PodScheduled", "True", None, None)]);
        s.host_ip = Some("10.0.0.1".into());
        s.start_time = Some(now());
        let waiting = ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some("ContainerCreating".into()),
                message: None,
            }),
            ..Default::default()
        };
        set_container(p, waiting, false);
    });
    let started = Instant::now();
    tokio::select! {
        _ = tokio::time::sleep(sim.inner.cfg.start_delay) => {}
        _ = killed(&mut kill) => return remove_pod(&sim, &ns, &name),
    }
    if behaviour == Behaviour::ImagePullBackOff {
        for reason in ["ErrImagePull", "ImagePullBackOff"] {
            mutate_pod(&sim, &ns, &name, |p| {
                let waiting = ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some(reason.into()),
                        message: Some("Back-off pulling image: not found".into()),
                    }),
                    ..Default::default()
                };
                set_container(p, waiting, false);
            });
        }
        killed(&mut kill).await;
        return remove_pod(&sim, &ns, &name);
    }
    // Like the kubelet, retry building the container's configuration until the Secrets it
    // references exist (`CreateContainerConfigError` meanwhile).
    let mut reported: Option<String> = None;
    while let Some(msg) = sim
        .pod(&ns, &name)
        .and_then(|p| missing_config(&sim, &ns, &p))
    {
        if reported.as_deref() != Some(msg.as_str()) {
            mutate_pod(&sim, &ns, &name, |p| {
                let waiting = ContainerState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some("CreateContainerConfigError".into()),
                        message: Some(msg.clone()),
                    }),
                    ..Default::default()
                };
                set_container(p, waiting, false);
            });
            reported = Some(msg);
        }
        tokio::select! {
            _ = tokio::time::sleep(sim.inner.cfg.config_retry) => {}
            _ = killed(&mut kill) => return remove_pod(&sim, &ns, &name),
        }
    }
    let pod = sim.pod(&ns, &name);
    let deadline = pod
        .as_ref()
        .and_then(|p| p.spec.as_ref())
        .and_then(|s| s.active_deadline_seconds)
        .map(|s| started + deadline_unit * u32::try_from(s).unwrap_or(u32::MAX));
    let started_at = now();
    mutate_pod(&sim, &ns, &name, |p| {
        p.status.get_or_insert_with(Default::default).phase = Some("Running".into());
        let running = ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(started_at.clone()),
            }),
            ..Default::default()
        };
        set_container(p, running, true);
    });
    let container = async {
        match &behaviour {
            Behaviour::Process => match pod {
                Some(pod) => crate::process::run(&sim, &pod, &logs, kill.clone()).await,
                None => End {
                    code: 137,
                    reason: "Error",
                    pod_reason: None,
                },
            },
            Behaviour::Script(steps) => script(steps, &logs, kill.clone()).await,
            _ => End {
                code: 1,
                reason: "Error",
                pod_reason: None,
            },
        }
    };
    let end = tokio::select! {
        e = container => e,
        _ = sleep_until_opt(deadline) => End {
            code: 137,
            reason: "Error",
            pod_reason: Some(("DeadlineExceeded", "Pod was active on the node longer than the specified deadline")),
        },
    };
    let message = if end.code != 0 {
        Some(logs.tail(80, 2048)).filter(|m| !m.is_empty())
    } else {
        None
    };
    logs.close();
    mutate_pod(&sim, &ns, &name, |p| {
        let s = p.status.get_or_insert_with(Default::default);
        s.phase = Some(if end.code == 0 { "Succeeded" } else { "Failed" }.into());
        if let Some((reason, msg)) = end.pod_reason {
            s.reason = Some(reason.into());
            s.message = Some(msg.into());
        }
        let terminated = ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: end.code,
                reason: Some(end.reason.into()),
                message,
                started_at: Some(started_at),
                finished_at: Some(now()),
                ..Default::default()
            }),
            ..Default::default()
        };
        set_container(p, terminated, false);
    });
    killed(&mut kill).await;
    remove_pod(&sim, &ns, &name);
}

/// The kubelet's complaint about the first required Secret (or key) the container's
/// environment references that does not exist, if any.
fn missing_config(sim: &Sim, ns: &str, pod: &Pod) -> Option<String> {
    let c = pod.spec.as_ref()?.containers.first()?;
    for r in c
        .env_from
        .iter()
        .flatten()
        .filter_map(|f| f.secret_ref.as_ref())
    {
        if r.optional != Some(true) && sim.secret(ns, &r.name).is_none() {
            return Some(format!("secret \"{}\" not found", r.name));
        }
    }
    let refs = c.env.iter().flatten();
    for r in refs.filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref()) {
        if r.optional == Some(true) {
            continue;
        }
        if sim.secret(ns, &r.name).is_none() {
            return Some(format!("secret \"{}\" not found", r.name));
        }
        if secret_value(sim, ns, &r.name, &r.key).is_none() {
            return Some(format!(
                "couldn't find key {} in Secret {ns}/{}",
                r.key, r.name
            ));
        }
    }
    None
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Run a scripted container; a deletion stops it at once with 143 (it obeys SIGTERM).
async fn script(steps: &[Step], logs: &LogBuf, mut kill: watch::Receiver<Option<i64>>) -> End {
    let run = async {
        for step in steps {
            match step {
                Step::Log(l) => logs.line(l),
                Step::Sleep(d) => tokio::time::sleep(*d).await,
                Step::Exit(code) => {
                    let reason = if *code == 0 { "Completed" } else { "Error" };
                    return End {
                        code: *code,
                        reason,
                        pod_reason: None,
                    };
                }
                Step::OomKill => {
                    return End {
                        code: 137,
                        reason: "OOMKilled",
                        pod_reason: None,
                    };
                }
                Step::Hang => std::future::pending::<()>().await,
            }
        }
        End {
            code: 0,
            reason: "Completed",
            pod_reason: None,
        }
    };
    tokio::select! {
        e = run => e,
        _ = killed(&mut kill) => End { code: 143, reason: "Error", pod_reason: None },
    }
}

impl End {
    pub(crate) fn exited(code: i32) -> Self {
        End {
            code,
            reason: if code == 0 { "Completed" } else { "Error" },
            pod_reason: None,
        }
    }
}

/// Used by the process runner to wait for a deletion.
pub(crate) async fn wait_killed(kill: &mut watch::Receiver<Option<i64>>) -> i64 {
    killed(kill).await
}
