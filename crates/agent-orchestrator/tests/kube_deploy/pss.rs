//! Pod Security "restricted", enforced by the real admission plugin: in a namespace labelled
//! as `deploy/namespaces.yaml` labels `agents`, the worker pod `build_pod` makes (configured as
//! the Deployment configures the runtime) is admitted, and the same pod with any one hardening
//! field removed or weakened is refused with 403 and a message naming the violated control.
//! Server-side dry-run: nothing is stored, so the table runs in one namespace.

use ao_core::runtime::{Callback, LaunchSpec};
use ao_core::task::Task;
use ao_runtime_kube::KubeArgs;
use ao_runtime_kube::pod::build_pod;
use clap::{CommandFactory, Parser};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use super::*;

#[derive(Parser)]
struct KubeFlags {
    #[command(flatten)]
    kube: KubeArgs,
}

/// The worker pod of a task, as the runtime configured by `deploy/deployment.yaml` builds it,
/// in namespace `ns`.
pub fn worker_pod(ns: &str) -> Pod {
    let d = manifest("deployment.yaml", "Deployment", None);
    let env: std::collections::BTreeMap<String, String> =
        d["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .expect("the orchestrator's env")
            .iter()
            .filter_map(|e| Some((e["name"].as_str()?.into(), e["value"].as_str()?.into())))
            .collect();
    let mut argv = vec!["serve".to_string()];
    for arg in KubeFlags::command().get_arguments() {
        if let Some(v) = arg.get_env().and_then(|var| env.get(var.to_str().unwrap())) {
            argv.push(format!("--{}={v}", arg.get_long().unwrap()));
        }
    }
    let mut cfg = KubeFlags::try_parse_from(&argv).unwrap().kube.into_config();
    cfg.namespace = ns.into();
    let task: Task = serde_json::from_value(json!({
        "id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "status": "starting", "reason": "scheduled",
        "prompt": "p", "timeout_seconds": 60, "created_at": "2026-01-01T00:00:00Z"
    }))
    .unwrap();
    let callback = Some(Callback {
        url: env["AO_CALLBACK_URL"].clone(),
        token: "t".into(),
    });
    build_pod(&cfg, &LaunchSpec { task, callback })
}

/// The pod of the orchestrator's own Deployment (`deploy/deployment.yaml`'s template).
pub fn orchestrator_pod() -> Pod {
    let d = manifest("deployment.yaml", "Deployment", None);
    let t = &d["spec"]["template"];
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "agent-orchestrator-dry-run", "labels": t["metadata"]["labels"]},
        "spec": t["spec"],
    }))
    .expect("the Deployment's template is a pod")
}

/// A pod without any securityContext.
pub fn bare_pod() -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap()
}

/// Server-side dry-run create: `Ok` when admitted, else `"<code>: <message>"` of the refusal,
/// 403 (admission) or 422 (validation); any other error panics.
pub async fn dry_run(client: &Client, ns: &str, mut pod: Pod) -> Result<(), String> {
    pod.metadata.namespace = Some(ns.into());
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    match Api::<Pod>::namespaced(client.clone(), ns)
        .create(&pp, &pod)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 422 => {
            Err(format!("{}: {}", s.code, s.message))
        }
        Err(e) => panic!("dry-run create in {ns}: {e}"),
    }
}

/// Pod Security's refusal: 403, naming the restricted profile and `control`.
fn pss_refusal(got: &Result<(), String>, control: &str) -> bool {
    matches!(got, Err(m) if m.starts_with("403: ")
        && m.contains(r#"violates PodSecurity "restricted:latest""#)
        && m.contains(control))
}

type Mutation = fn(&mut Value);

/// (the change, the mutation, the words of the refusal; `None`: still admitted).
const CASES: &[(&str, Mutation, Option<&str>)] = &[
    (
        "runAsNonRoot removed (pod and container)",
        |p| {
            rm(p, "/spec/securityContext", "runAsNonRoot");
            rm(p, "/spec/containers/0/securityContext", "runAsNonRoot");
        },
        Some("runAsNonRoot != true"),
    ),
    (
        "container runAsNonRoot: false",
        |p| {
            set(
                p,
                "/spec/containers/0/securityContext",
                "runAsNonRoot",
                json!(false),
            );
        },
        Some("runAsNonRoot != true"),
    ),
    (
        "runAsUser: 0",
        |p| {
            set(
                p,
                "/spec/containers/0/securityContext",
                "runAsUser",
                json!(0),
            );
        },
        Some("runAsUser=0"),
    ),
    (
        "allowPrivilegeEscalation removed",
        |p| {
            rm(
                p,
                "/spec/containers/0/securityContext",
                "allowPrivilegeEscalation",
            );
        },
        Some("allowPrivilegeEscalation != false"),
    ),
    (
        "allowPrivilegeEscalation: true",
        |p| {
            set(
                p,
                "/spec/containers/0/securityContext",
                "allowPrivilegeEscalation",
                json!(true),
            );
        },
        Some("allowPrivilegeEscalation != false"),
    ),
    (
        "capabilities drop ALL removed",
        |p| {
            rm(p, "/spec/containers/0/securityContext", "capabilities");
        },
        Some("unrestricted capabilities"),
    ),
    (
        "capabilities add NET_RAW",
        |p| {
            set(
                p,
                "/spec/containers/0/securityContext/capabilities",
                "add",
                json!(["NET_RAW"]),
            );
        },
        Some("unrestricted capabilities"),
    ),
    (
        "seccompProfile removed (pod and container)",
        |p| {
            rm(p, "/spec/securityContext", "seccompProfile");
            rm(p, "/spec/containers/0/securityContext", "seccompProfile");
        },
        Some("seccompProfile"),
    ),
    (
        "container seccompProfile Unconfined",
        |p| {
            set(
                p,
                "/spec/containers/0/securityContext",
                "seccompProfile",
                json!({"type": "Unconfined"}),
            );
        },
        Some("seccompProfile"),
    ),
    // The API server runs with --allow-privileged=false (as K3s and most clusters), so
    // validation refuses a privileged container (422) before Pod Security sees it.
    (
        "privileged: true",
        |p| {
            set(
                p,
                "/spec/containers/0/securityContext",
                "privileged",
                json!(true),
            );
            set(
                p,
                "/spec/containers/0/securityContext",
                "allowPrivilegeEscalation",
                json!(true),
            );
        },
        Some("422: privileged: Forbidden"),
    ),
    (
        "hostNetwork: true",
        |p| set(p, "/spec", "hostNetwork", json!(true)),
        Some("host namespaces"),
    ),
    (
        "hostPID: true",
        |p| set(p, "/spec", "hostPID", json!(true)),
        Some("host namespaces"),
    ),
    (
        "hostIPC: true",
        |p| set(p, "/spec", "hostIPC", json!(true)),
        Some("host namespaces"),
    ),
    (
        "a hostPath volume for the workspace",
        |p| {
            p["spec"]["volumes"][0] = json!({"name": "workspace", "hostPath": {"path": "/tmp"}});
        },
        Some("hostPath"),
    ),
    // Either level satisfies the control; these stay admitted.
    (
        "only the pod's runAsNonRoot removed",
        |p| {
            rm(p, "/spec/securityContext", "runAsNonRoot");
        },
        None,
    ),
    (
        "only the container's seccompProfile removed",
        |p| {
            rm(p, "/spec/containers/0/securityContext", "seccompProfile");
        },
        None,
    ),
    // Not a Pod Security control (the runtime's own hardening; see deploy_manifests).
    (
        "readOnlyRootFilesystem removed",
        |p| {
            rm(
                p,
                "/spec/containers/0/securityContext",
                "readOnlyRootFilesystem",
            );
        },
        None,
    ),
];

fn rm(p: &mut Value, at: &str, field: &str) {
    let obj = p.pointer_mut(at).and_then(Value::as_object_mut);
    let obj = obj.unwrap_or_else(|| panic!("the worker pod has no {at}"));
    assert!(
        obj.remove(field).is_some(),
        "the worker pod has no {at}/{field}"
    );
}

fn set(p: &mut Value, at: &str, field: &str, v: Value) {
    let obj = p.pointer_mut(at).and_then(Value::as_object_mut);
    obj.unwrap_or_else(|| panic!("the worker pod has no {at}"))
        .insert(field.into(), v);
}

/// A test namespace with the Pod Security labels `deploy/namespaces.yaml` gives `name`, and the
/// ServiceAccount `sa` (admission refuses a pod whose ServiceAccount does not exist).
async fn labelled_like(client: &Client, name: &str, prefix: &str, sa: &str) -> String {
    let ns = env().namespace(prefix).await;
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": sa}})).unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let labels = manifest("namespaces.yaml", "Namespace", Some(name))["metadata"]["labels"].clone();
    let pss: serde_json::Map<String, Value> = labels
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("pod-security.kubernetes.io/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        pss["pod-security.kubernetes.io/enforce"], "restricted",
        "{name}"
    );
    let patch = json!({"metadata": {"labels": pss}});
    Api::<Namespace>::all(client.clone())
        .patch(&ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    ns
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_admits_the_worker_pod_and_refuses_each_weakened_hardening_field() {
    let admin = env().admin().await;
    let ns = labelled_like(&admin, "agents", "aod-pss", "claude-worker").await;
    let pod = worker_pod(&ns);
    dry_run(&admin, &ns, pod.clone())
        .await
        .expect("the worker pod is admitted under restricted");
    let base = serde_json::to_value(&pod).unwrap();
    let mut wrong = Vec::new();
    for (what, mutate, refusal) in CASES {
        let mut v = base.clone();
        mutate(&mut v);
        let weakened: Pod = serde_json::from_value(v).unwrap();
        let got = dry_run(&admin, &ns, weakened).await;
        let verdict = match (&got, refusal) {
            (Err(m), Some(words)) if words.starts_with("422: ") && m.contains(&words[5..]) => {
                "refused (422)"
            }
            (_, Some(control)) if pss_refusal(&got, control) => "refused (403)",
            (Ok(()), None) => "admitted",
            _ => {
                wrong.push(format!("{what}: expected {refusal:?}, got {got:?}"));
                "WRONG"
            }
        };
        eprintln!("{verdict:>14}: {what}  {}", got.err().unwrap_or_default());
    }
    assert!(
        wrong.is_empty(),
        "Pod Security did not judge as expected:\n{}",
        wrong.join("\n")
    );
    let _ = Api::<Namespace>::all(admin)
        .delete(&ns, &Default::default())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_admits_the_orchestrators_own_deployment_pod() {
    let admin = env().admin().await;
    let ns = labelled_like(
        &admin,
        "agents-control-plane",
        "aod-pss-cp",
        "agent-orchestrator",
    )
    .await;
    dry_run(&admin, &ns, orchestrator_pod())
        .await
        .expect("the orchestrator's pod is admitted under restricted");
    let got = dry_run(&admin, &ns, bare_pod()).await;
    assert!(
        pss_refusal(&got, "runAsNonRoot != true"),
        "a bare pod: {got:?}"
    );
    let _ = Api::<Namespace>::all(admin)
        .delete(&ns, &Default::default())
        .await;
}
