//! Pure construction of the pod status the node writes through `pods/status`: container
//! states, phase and conditions, as the kubelet reports them. A strategic merge patch, so
//! conditions merge by type (the binding's `PodScheduled` stays) and container statuses are
//! replaced whole.

use k8s_openapi::api::core::v1::PodCondition;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

/// The address every pod of this node has: it is the node's too.
pub(crate) const POD_IP: &str = "127.0.0.1";

/// One container's state, as the kubelet reports it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum CState {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started: Timestamp,
    },
    Terminated {
        exit_code: i32,
        reason: String,
        started: Option<Timestamp>,
        finished: Timestamp,
    },
}

impl CState {
    pub(crate) fn waiting(reason: &str, message: impl Into<String>) -> Self {
        CState::Waiting {
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// Kubelet's terminated reason for an exit code (OOM kills are reported by the caller).
    pub(crate) fn exited(exit_code: i32, started: Option<Timestamp>, finished: Timestamp) -> Self {
        let reason = if exit_code == 0 { "Completed" } else { "Error" };
        CState::Terminated {
            exit_code,
            reason: reason.into(),
            started,
            finished,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            CState::Waiting { reason, message } => {
                json!({"waiting": {"reason": reason, "message": message}})
            }
            CState::Running { started } => json!({"running": {"startedAt": started.to_string()}}),
            CState::Terminated {
                exit_code,
                reason,
                started,
                finished,
            } => {
                let mut t = json!({"exitCode": exit_code, "reason": reason, "finishedAt": finished.to_string()});
                if let Some(s) = started {
                    t["startedAt"] = json!(s.to_string());
                }
                json!({"terminated": t})
            }
        }
    }
}

/// A container as the status shows it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ContainerView {
    pub name: String,
    /// `terminated.message` (the log's tail for `FallbackToLogsOnError`).
    pub termination_message: Option<String>,
    pub image: String,
    pub state: CState,
}

/// What a status write is made from.
pub(crate) struct PodView<'a> {
    pub uid: &'a str,
    pub start_time: Timestamp,
    pub containers: &'a [ContainerView],
    /// A pod-level failure (reason, message), e.g. `DeadlineExceeded`.
    pub failure: Option<(&'a str, &'a str)>,
    /// The conditions the pod has now, to keep their `lastTransitionTime` when unchanged.
    pub prev_conditions: &'a [PodCondition],
    pub now: Timestamp,
}

/// The pod phase for these container states (restart policy is always treated as Never).
pub(crate) fn phase(containers: &[ContainerView], failure: bool) -> &'static str {
    let terminated = |c: &&ContainerView| matches!(c.state, CState::Terminated { .. });
    if failure {
        return "Failed";
    }
    if !containers.is_empty() && containers.iter().all(|c| terminated(&c)) {
        let ok = containers
            .iter()
            .all(|c| matches!(c.state, CState::Terminated { exit_code: 0, .. }));
        return if ok { "Succeeded" } else { "Failed" };
    }
    let started = containers
        .iter()
        .any(|c| matches!(c.state, CState::Running { .. }) || terminated(&c));
    if started { "Running" } else { "Pending" }
}

/// Whether the phase is final.
pub(crate) fn is_terminal(phase: &str) -> bool {
    phase == "Succeeded" || phase == "Failed"
}

/// The strategic merge patch for `pods/status`. `metadata.uid` makes it fail (uid is
/// immutable) when the name now belongs to another pod.
pub(crate) fn patch(view: &PodView<'_>) -> Value {
    let phase = phase(view.containers, view.failure.is_some());
    let statuses: Vec<Value> = view
        .containers
        .iter()
        .map(|c| container_status(view.uid, c))
        .collect();
    let mut status = json!({
        "phase": phase,
        "startTime": view.start_time.to_string(),
        "hostIP": POD_IP, "hostIPs": [{"ip": POD_IP}],
        "podIP": POD_IP, "podIPs": [{"ip": POD_IP}],
        "containerStatuses": statuses,
        "conditions": conditions(view, phase),
    });
    if let Some((reason, message)) = view.failure {
        status["reason"] = json!(reason);
        status["message"] = json!(message);
    }
    json!({"metadata": {"uid": view.uid}, "status": status})
}

fn container_status(uid: &str, c: &ContainerView) -> Value {
    let running = matches!(c.state, CState::Running { .. });
    let mut s = json!({
        "name": c.name,
        "image": c.image,
        "imageID": format!("ao-kube-node://{}", c.image),
        "ready": running,
        "started": running,
        "restartCount": 0,
        "state": c.state.to_json(),
    });
    if let (Some(m), CState::Terminated { .. }) = (&c.termination_message, &c.state) {
        s["state"]["terminated"]["message"] = json!(m);
    }
    if !matches!(c.state, CState::Waiting { .. }) {
        s["containerID"] = json!(format!("ao-kube-node://{uid}/{}", c.name));
    }
    s
}

fn conditions(view: &PodView<'_>, phase: &str) -> Vec<Value> {
    let unready: Vec<&str> = view
        .containers
        .iter()
        .filter(|c| !matches!(c.state, CState::Running { .. }))
        .map(|c| c.name.as_str())
        .collect();
    let (ready, reason, message) = if unready.is_empty() {
        ("True", None, None)
    } else if is_terminal(phase) {
        ("False", Some("PodCompleted"), None)
    } else {
        (
            "False",
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let mut out = vec![condition(
        view,
        "PodReadyToStartContainers",
        "True",
        None,
        None,
    )];
    out.push(condition(view, "Initialized", "True", None, None));
    for type_ in ["ContainersReady", "Ready"] {
        out.push(condition(view, type_, ready, reason, message.as_deref()));
    }
    out
}

fn condition(
    view: &PodView<'_>,
    type_: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) -> Value {
    let prev = view.prev_conditions.iter().find(|c| c.type_ == type_);
    let since = match prev {
        Some(c) if c.status == status => c
            .last_transition_time
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(view.now),
        _ => view.now,
    };
    let mut c = json!({"type": type_, "status": status, "lastTransitionTime": since.to_string()});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    if let Some(m) = message {
        c["message"] = json!(m);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn view(name: &str, state: CState) -> ContainerView {
        ContainerView {
            name: name.into(),
            termination_message: None,
            image: "img".into(),
            state,
        }
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(s).unwrap()
    }

    #[test]
    fn phase_follows_container_states() {
        let waiting = view("a", CState::waiting("ContainerCreating", ""));
        let running = view("b", CState::Running { started: t(1) });
        let ok = view("c", CState::exited(0, Some(t(1)), t(2)));
        let bad = view("d", CState::exited(3, Some(t(1)), t(2)));
        assert_eq!(phase(std::slice::from_ref(&waiting), false), "Pending");
        assert_eq!(phase(&[waiting.clone(), running.clone()], false), "Running");
        assert_eq!(phase(&[ok.clone(), running], false), "Running");
        assert_eq!(phase(std::slice::from_ref(&ok), false), "Succeeded");
        assert_eq!(phase(&[ok.clone(), bad.clone()], false), "Failed");
        assert_eq!(phase(&[ok], true), "Failed");
        assert_eq!(
            bad.state,
            CState::Terminated {
                exit_code: 3,
                reason: "Error".into(),
                started: Some(t(1)),
                finished: t(2)
            }
        );
    }

    #[test]
    fn terminated_patch_carries_exit_code_reason_and_pod_failure() {
        let cs = [view("main", CState::exited(137, Some(t(1)), t(5)))];
        let v = PodView {
            uid: "u1",
            start_time: t(0),
            containers: &cs,
            failure: Some(("DeadlineExceeded", "m")),
            prev_conditions: &[],
            now: t(5),
        };
        let p = patch(&v);
        assert_eq!(p["metadata"]["uid"], "u1");
        assert_eq!(p["status"]["phase"], "Failed");
        assert_eq!(p["status"]["reason"], "DeadlineExceeded");
        let term = &p["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(term["exitCode"], 137);
        assert_eq!(term["reason"], "Error");
        assert_eq!(p["status"]["conditions"][3]["reason"], "PodCompleted");
    }

    #[test]
    fn unchanged_conditions_keep_their_transition_time() {
        let cs = [view("main", CState::Running { started: t(1) })];
        let prev = [
            PodCondition {
                type_: "Initialized".into(),
                status: "True".into(),
                last_transition_time: Some(Time(t(1))),
                ..Default::default()
            },
            PodCondition {
                type_: "Ready".into(),
                status: "False".into(),
                last_transition_time: Some(Time(t(1))),
                ..Default::default()
            },
        ];
        let v = PodView {
            uid: "u",
            start_time: t(0),
            containers: &cs,
            failure: None,
            prev_conditions: &prev,
            now: t(9),
        };
        let p = patch(&v);
        let by = |ty: &str| {
            p["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == ty)
                .unwrap()
                .clone()
        };
        assert_eq!(by("Initialized")["lastTransitionTime"], t(1).to_string());
        assert_eq!(by("Ready")["lastTransitionTime"], t(9).to_string());
        assert_eq!(by("Ready")["status"], "True");
        assert_eq!(
            p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"],
            t(1).to_string()
        );
    }
}
