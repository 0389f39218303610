//! Reading a pod's status: where the worker is (waiting, stuck, running, finished), and how a
//! finished pod's end becomes an [`ExitInfo`] (exit code, `oom_killed`, `DeadlineExceeded`,
//! the termination message as a fallback summary).

use ao_core::lifecycle::Reason;
use ao_core::runtime::ExitInfo;
use k8s_openapi::api::core::v1::{ContainerState, Pod};

const IMAGE_PULL_REASONS: [&str; 4] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
];

/// Where a pod is, as far as the runtime cares.
#[derive(Debug, Clone, PartialEq)]
pub enum PodState {
    /// Not running yet; `stuck` names a reason that may turn into a failure if it lasts.
    Pending {
        stuck: Option<Stuck>,
    },
    Running,
    Finished(ExitInfo),
}

/// A pending pod that may never start.
#[derive(Debug, Clone, PartialEq)]
pub enum Stuck {
    ImagePull(String),
    Unschedulable(String),
    /// The kubelet cannot build the container's configuration (`CreateContainerConfigError`):
    /// a Secret or ConfigMap it references is missing, or lacks a key. It keeps retrying, so
    /// creating the Secret soon after fixes it.
    Config(String),
}

/// The kubelet's waiting reason for a container whose configuration cannot be built.
const CONFIG_ERROR_REASON: &str = "CreateContainerConfigError";

fn container_state(pod: &Pod) -> Option<&ContainerState> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()?
        .state
        .as_ref()
}

/// True once the container has started (running or terminated): its log can be read.
pub fn container_started(pod: &Pod) -> bool {
    container_state(pod).is_some_and(|s| s.running.is_some() || s.terminated.is_some())
}

/// True when someone asked for the pod to be deleted.
pub fn deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

pub fn classify(pod: &Pod) -> PodState {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    match phase {
        "Succeeded" | "Failed" => return PodState::Finished(exit_info(pod)),
        "Running" => return PodState::Running,
        _ => {}
    }
    if let Some(w) = container_state(pod).and_then(|s| s.waiting.as_ref())
        && let Some(reason) = w.reason.as_deref()
    {
        let msg = format!("{reason}: {}", w.message.as_deref().unwrap_or_default());
        if IMAGE_PULL_REASONS.contains(&reason) {
            return PodState::Pending {
                stuck: Some(Stuck::ImagePull(msg)),
            };
        }
        if reason == CONFIG_ERROR_REASON {
            return PodState::Pending {
                stuck: Some(Stuck::Config(msg)),
            };
        }
    }
    let unschedulable = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter().find(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("Unschedulable")
            })
        })
        .map(|c| c.message.clone().unwrap_or_else(|| "Unschedulable".into()));
    PodState::Pending {
        stuck: unschedulable.map(Stuck::Unschedulable),
    }
}

/// How a finished pod ended.
pub fn exit_info(pod: &Pod) -> ExitInfo {
    let status = pod.status.as_ref();
    let term = container_state(pod).and_then(|s| s.terminated.as_ref());
    let pod_reason = status.and_then(|s| s.reason.as_deref());
    let reason = if pod_reason == Some("DeadlineExceeded") {
        Some(Reason::DeadlineExceeded)
    } else if term.and_then(|t| t.reason.as_deref()) == Some("OOMKilled") {
        Some(Reason::Other("oom_killed".into()))
    } else {
        None
    };
    let message = term
        .and_then(|t| t.message.clone())
        .or_else(|| status.and_then(|s| s.message.clone()))
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty());
    ExitInfo {
        code: term.map(|t| t.exit_code),
        signal: None,
        reason,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, PodStatus,
    };

    fn pod(phase: &str, state: ContainerState, reason: Option<&str>) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some(phase.into()),
                reason: reason.map(Into::into),
                container_statuses: Some(vec![ContainerStatus {
                    state: Some(state),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn terminated(code: i32, reason: &str) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                reason: Some(reason.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn finished_pods_map_to_exit_info() {
        let p = pod("Succeeded", terminated(0, "Completed"), None);
        assert_eq!(
            classify(&p),
            PodState::Finished(ExitInfo {
                code: Some(0),
                ..Default::default()
            })
        );
        let p = pod("Failed", terminated(137, "OOMKilled"), None);
        assert_eq!(
            exit_info(&p).reason,
            Some(Reason::Other("oom_killed".into()))
        );
        let p = pod("Failed", terminated(137, "Error"), Some("DeadlineExceeded"));
        assert_eq!(exit_info(&p).reason, Some(Reason::DeadlineExceeded));
    }

    #[test]
    fn stuck_pods_are_recognised() {
        let waiting = ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some("ImagePullBackOff".into()),
                message: None,
            }),
            ..Default::default()
        };
        assert!(matches!(
            classify(&pod("Pending", waiting, None)),
            PodState::Pending {
                stuck: Some(Stuck::ImagePull(_))
            }
        ));
        let waiting = ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some("CreateContainerConfigError".into()),
                message: Some("secret \"claude-worker-secrets\" not found".into()),
            }),
            ..Default::default()
        };
        assert_eq!(
            classify(&pod("Pending", waiting, None)),
            PodState::Pending {
                stuck: Some(Stuck::Config(
                    "CreateContainerConfigError: secret \"claude-worker-secrets\" not found".into()
                ))
            }
        );
    }
}
