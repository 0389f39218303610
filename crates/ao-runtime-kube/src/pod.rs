//! What a task's worker looks like in Kubernetes: a hardened, single-container Pod named after
//! the task, and a per-task Secret holding its callback token. Secret values never appear in
//! the pod spec: the pod refers to them with `secretKeyRef`.
//!
//! The task spec (with the prompt) reaches the worker as the `AO_TASK_SPEC` env value — no
//! shell ever sees it. That bounds its size: see [`MAX_TASK_SPEC_BYTES`].

use std::collections::BTreeMap;

use ao_core::runtime::LaunchSpec;
use ao_core::task::{Task, TaskId, TaskSpec};
use ao_core::validation::ValidationError;
use ao_core::worker::env::CALLBACK_TOKEN_KEY;
use ao_core::worker::settings::{self, InKubernetes, SETTINGS};
use ao_core::worker::{CallbackEnv, EnvValue, TaskSource, WorkerEnv};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, Pod, PodSecurityContext,
    PodSpec, ResourceRequirements, SeccompProfile, Secret, SecretKeySelector, SecurityContext,
    Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::ListParams;

use crate::config::KubeConfig;

/// The largest `AO_TASK_SPEC` (serialized task spec) a pod may carry: 120 KiB. Linux refuses
/// to exec a process with any single `NAME=value` environment string over 128 KiB
/// (`MAX_ARG_STRLEN`), so a larger spec would leave the container unable to start; the pod
/// object itself stays far below etcd's ~1.5 MiB request limit.
pub const MAX_TASK_SPEC_BYTES: usize = 120 * 1024;
/// The largest total of environment values a pod may carry: 256 KiB (the spec, plus the
/// task's own env variables, which appear twice).
pub const MAX_ENV_BYTES: usize = 256 * 1024;

pub const CONTAINER: &str = "worker";
pub const LABEL_APP: &str = "app";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_TASK_ID: &str = "agent-orchestrator/task-id";
pub const MANAGED_BY: &str = "agent-orchestrator";
/// The selector of every object this runtime creates.
pub const SELECTOR: &str = "app.kubernetes.io/managed-by=agent-orchestrator";

pub fn pod_name(id: TaskId) -> String {
    format!("claude-worker-{id}")
}

pub fn token_secret_name(id: TaskId) -> String {
    format!("claude-worker-{id}-token")
}

/// The task id a pod belongs to, from its label.
pub fn task_id_of(pod: &Pod) -> Option<TaskId> {
    pod.metadata
        .labels
        .as_ref()?
        .get(LABEL_TASK_ID)?
        .parse()
        .ok()
}

/// Reads the pod `name` from the API (not the watch cache) with a `list` restricted to that
/// name: the Role grants `list` for the watch, and a `get` would allow nothing more, so the Role
/// in `deploy/rbac.yaml` grants no `get` (the real-API-server test `kube_deploy` shows each verb
/// it grants is needed).
pub async fn read_pod(pods: &Api<Pod>, name: &str) -> Result<Option<Pod>, kube::Error> {
    let lp = ListParams::default().fields(&format!("metadata.name={name}"));
    Ok(pods
        .list(&lp)
        .await?
        .items
        .into_iter()
        .find(|p| p.metadata.name.as_deref() == Some(name)))
}

/// Refuse a task whose spec cannot fit in a pod's environment.
pub fn admit(spec: &TaskSpec) -> Result<(), ValidationError> {
    let spec_len = serde_json::to_vec(spec)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    let env_len: usize = spec.env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    if spec_len > MAX_TASK_SPEC_BYTES || spec_len + env_len > MAX_ENV_BYTES {
        return Err(ValidationError {
            field: "prompt".into(),
            message: format!(
                "the task is too large for a Kubernetes worker: its spec is {spec_len} bytes, the limit is {MAX_TASK_SPEC_BYTES} bytes (prompt, env and labels together)"
            ),
        });
    }
    Ok(())
}

fn labels(id: TaskId) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_APP.to_string(), "claude-worker".to_string()),
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        (LABEL_TASK_ID.to_string(), id.to_string()),
    ])
}

fn annotations(task: &Task) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    if let Some(m) = &task.spec.model {
        a.insert("agent-orchestrator/model".into(), m.clone());
    }
    if let Some(r) = &task.spec.repository {
        a.insert("agent-orchestrator/repository".into(), r.url.clone());
    }
    a.insert(
        "agent-orchestrator/labels".into(),
        serde_json::to_string(&task.spec.labels).unwrap_or_else(|_| "{}".into()),
    );
    a.insert(
        "agent-orchestrator/created-at".into(),
        task.created_at.to_rfc3339(),
    );
    a
}

fn plain(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn from_secret(name: &str, secret: &str, key: &str, optional: bool) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: optional.then_some(true),
            }),
            ..Default::default()
        }),
    }
}

fn quantities(pairs: [(&str, &str); 3]) -> BTreeMap<String, Quantity> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

const MOUNTS: [(&str, &str); 3] = [
    ("workspace", "/workspace"),
    ("home", "/home/agent"),
    ("tmp", "/tmp"),
];

/// The worker container's environment: the per-task contract ([`WorkerEnv`]), whose secrets
/// become `secretKeyRef`s to the task's token Secret; the secret worker settings as
/// references to the shared worker Secret; the plain settings the orchestrator copies; and
/// last the task's own variables, which never replace any of those.
fn worker_env(cfg: &KubeConfig, spec: &LaunchSpec) -> Vec<EnvVar> {
    let task = &spec.task;
    let contract = WorkerEnv {
        task_id: task.id,
        task: TaskSource::Inline(task.spec.clone()),
        workspace: Some("/workspace".into()),
        home: Some("/home/agent".into()),
        tmpdir: None,
        callback: spec.callback.as_ref().map(|cb| CallbackEnv {
            url: cb.url.clone(),
            token: cb.token.clone().into(),
        }),
    };
    let mut env: Vec<EnvVar> = contract
        .to_env()
        .into_iter()
        .map(|v| match v.value {
            EnvValue::Plain(value) => plain(v.name, value),
            EnvValue::Secret { key, .. } => {
                from_secret(v.name, &token_secret_name(task.id), key, false)
            }
        })
        .collect();
    for s in SETTINGS
        .iter()
        .filter(|s| s.kubernetes == InKubernetes::FromSecret)
    {
        let optional = s.name != settings::ANTHROPIC_API_KEY;
        env.push(from_secret(s.name, &cfg.secret_name, s.name, optional));
    }
    if let Some(url) = &cfg.anthropic_base_url {
        env.push(plain(settings::ANTHROPIC_BASE_URL, url.clone()));
    }
    let copied = cfg.worker_settings.iter().map(|(k, v)| (k, v));
    for (k, v) in copied.chain(&task.spec.env) {
        if !env.iter().any(|e| e.name == *k) {
            env.push(plain(k, v.clone()));
        }
    }
    env
}

/// The worker pod for a task.
pub fn build_pod(cfg: &KubeConfig, spec: &LaunchSpec) -> Pod {
    let task = &spec.task;
    let id = task.id;
    let env = worker_env(cfg, spec);
    let r = &cfg.resources;
    let uid = cfg.run_as_user;
    let container = Container {
        name: CONTAINER.into(),
        image: Some(cfg.image.clone()),
        image_pull_policy: Some(cfg.image_pull_policy.clone()),
        command: (!cfg.command.is_empty()).then(|| cfg.command.clone()),
        working_dir: Some("/workspace".into()),
        env: Some(env),
        resources: Some(ResourceRequirements {
            requests: Some(quantities([
                ("cpu", &r.cpu_request),
                ("memory", &r.memory_request),
                ("ephemeral-storage", &r.ephemeral_storage_request),
            ])),
            limits: Some(quantities([
                ("cpu", &r.cpu_limit),
                ("memory", &r.memory_limit),
                ("ephemeral-storage", &r.ephemeral_storage_limit),
            ])),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(uid),
            run_as_group: Some(uid),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..Default::default()
        }),
        volume_mounts: Some(
            MOUNTS
                .iter()
                .map(|(n, p)| VolumeMount {
                    name: n.to_string(),
                    mount_path: p.to_string(),
                    ..Default::default()
                })
                .collect(),
        ),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    };
    Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(id)),
            namespace: Some(cfg.namespace.clone()),
            labels: Some(labels(id)),
            annotations: Some(annotations(task)),
            ..Default::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            active_deadline_seconds: Some(
                i64::try_from(task.spec.timeout_seconds)
                    .unwrap_or(i64::MAX)
                    .max(1),
            ),
            service_account_name: Some(cfg.service_account.clone()),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            host_network: Some(false),
            host_pid: Some(false),
            host_ipc: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(uid),
                run_as_group: Some(uid),
                fs_group: Some(uid),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    localhost_profile: None,
                }),
                ..Default::default()
            }),
            containers: vec![container],
            volumes: Some(
                MOUNTS
                    .iter()
                    .map(|(n, _)| Volume {
                        name: n.to_string(),
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        status: None,
    }
}

/// The per-task Secret with the worker's callback token.
pub fn build_token_secret(cfg: &KubeConfig, id: TaskId, token: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(token_secret_name(id)),
            namespace: Some(cfg.namespace.clone()),
            labels: Some(labels(id)),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            CALLBACK_TOKEN_KEY.to_string(),
            ByteString(token.as_bytes().to_vec()),
        )])),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use ao_core::runtime::Callback;

    use super::*;

    #[test]
    fn settings_are_copied_and_nothing_overrides_the_contract() {
        let task: Task = serde_json::from_value(serde_json::json!({
            "id": TaskId::new(), "status": "starting", "reason": "scheduled", "prompt": "p",
            "timeout_seconds": 5, "created_at": "2026-01-01T00:00:00Z",
            "env": {"AO_WORKSPACE": "/forged", "AO_PERMISSION_MODE": "plan", "FOO": "bar"},
        }))
        .unwrap();
        let cfg = KubeConfig {
            worker_settings: vec![("AO_PERMISSION_MODE".into(), "bypassPermissions".into())],
            ..KubeConfig::default()
        };
        let spec = LaunchSpec {
            task,
            callback: Some(Callback {
                url: "http://o:8080".into(),
                token: "tok-secret-value".into(),
            }),
        };
        let env = worker_env(&cfg, &spec);
        let value = |n: &str| {
            env.iter()
                .find(|e| e.name == n)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(value("AO_WORKSPACE").as_deref(), Some("/workspace"));
        assert_eq!(
            value("AO_PERMISSION_MODE").as_deref(),
            Some("bypassPermissions")
        );
        assert_eq!(value("FOO").as_deref(), Some("bar"));
        assert!(!format!("{env:?}").contains("tok-secret-value"));
        let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }
}
