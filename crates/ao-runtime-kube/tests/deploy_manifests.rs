//! The kustomize base in `deploy/`: every file is listed in `kustomization.yaml`, every object
//! parses strictly into its typed Kubernetes struct (an unknown field or a wrong type fails),
//! and the objects agree with what the Kubernetes runtime actually does: the Role grants
//! exactly the verbs the runtime's source uses, the Deployment configures real `serve` flags,
//! and the NetworkPolicy selects the pods `build_pod` creates.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ao_core::runtime::{Callback, LaunchSpec};
use ao_core::task::Task;
use ao_runtime_kube::KubeArgs;
use ao_runtime_kube::pod::{LABEL_APP, build_pod};
use clap::{CommandFactory, Parser};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const CONTROL_PLANE_NS: &str = "agents-control-plane";
const WORKER_NS: &str = "agents";
const ORCHESTRATOR: &str = "agent-orchestrator";
const ORCHESTRATOR_PORT: i32 = 8080;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn deploy_dir() -> PathBuf {
    repo_root().join("deploy")
}

// ---------------------------------------------------------------------------------------------
// ServiceMonitor (a Prometheus Operator CRD): modelled locally, unknown fields denied.

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitor {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: ServiceMonitorSpec,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitorSpec {
    selector: LabelSelector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespace_selector: Option<NamespaceSelector>,
    endpoints: Vec<Endpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    job_label: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NamespaceSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    any: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    match_names: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Endpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scrape_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    honor_labels: Option<bool>,
}

// ---------------------------------------------------------------------------------------------
// Loading.

/// One YAML document of one file.
struct Doc {
    file: String,
    index: usize,
    value: Value,
}

impl Doc {
    fn loc(&self) -> String {
        let kind = self.value["kind"].as_str().unwrap_or("?");
        let name = self.value["metadata"]["name"].as_str().unwrap_or("?");
        format!(
            "deploy/{} (document {}, {kind}/{name})",
            self.file,
            self.index + 1
        )
    }
}

#[derive(Default)]
struct Manifests {
    docs: Vec<Doc>,
    namespaces: Vec<Namespace>,
    service_accounts: Vec<ServiceAccount>,
    roles: Vec<Role>,
    role_bindings: Vec<RoleBinding>,
    deployments: Vec<Deployment>,
    services: Vec<Service>,
    network_policies: Vec<NetworkPolicy>,
    service_monitors: Vec<ServiceMonitor>,
}

/// The `resources:` of `deploy/kustomization.yaml`, checked against the YAML files present.
fn listed_resources() -> Vec<String> {
    let path = deploy_dir().join("kustomization.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let k: Value = serde_yaml_ng::from_str(&text).expect("kustomization.yaml is YAML");
    assert_eq!(
        k["apiVersion"], "kustomize.config.k8s.io/v1beta1",
        "kustomization apiVersion"
    );
    assert_eq!(k["kind"], "Kustomization", "kustomization kind");
    let resources: Vec<String> = k["resources"]
        .as_array()
        .expect("kustomization.yaml has a `resources:` list")
        .iter()
        .map(|r| r.as_str().expect("resources are file names").to_string())
        .collect();
    let unique: BTreeSet<&String> = resources.iter().collect();
    assert_eq!(
        unique.len(),
        resources.len(),
        "a resource is listed twice: {resources:?}"
    );

    let mut present = BTreeSet::new();
    for entry in std::fs::read_dir(deploy_dir()).expect("deploy/ exists") {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if (name.ends_with(".yaml") || name.ends_with(".yml")) && name != "kustomization.yaml" {
            present.insert(name);
        }
    }
    let listed: BTreeSet<String> = resources.iter().cloned().collect();
    let unlisted: Vec<&String> = present.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "YAML files in deploy/ not listed in kustomization.yaml resources: {unlisted:?}"
    );
    let missing: Vec<&String> = listed.difference(&present).collect();
    assert!(
        missing.is_empty(),
        "kustomization.yaml lists files that are not in deploy/: {missing:?}"
    );
    resources
}

/// Every key of `orig` must survive the round trip through the typed struct, with its value.
fn compare(orig: &Value, back: &Value, path: &str, problems: &mut Vec<String>) {
    match (orig, back) {
        (Value::Object(o), Value::Object(b)) => {
            for (k, v) in o {
                let p = format!("{path}.{k}");
                match b.get(k) {
                    Some(bv) => compare(v, bv, &p, problems),
                    None => problems.push(format!(
                        "{p}: unknown field (dropped by the typed round trip)"
                    )),
                }
            }
        }
        (Value::Array(o), Value::Array(b)) if o.len() == b.len() => {
            for (i, (ov, bv)) in o.iter().zip(b).enumerate() {
                compare(ov, bv, &format!("{path}[{i}]"), problems);
            }
        }
        (Value::Number(o), Value::Number(b)) if o.as_f64() == b.as_f64() => {}
        (o, b) if o == b => {}
        (o, b) => problems.push(format!("{path}: {o} came back as {b}")),
    }
}

/// Deserialize strictly: a wrong type fails with its path, an unknown field fails the round trip.
fn typed<T: DeserializeOwned + Serialize>(doc: &Doc, problems: &mut Vec<String>) -> Option<T> {
    let t: T = match serde_path_to_error::deserialize(doc.value.clone()) {
        Ok(t) => t,
        Err(e) => {
            problems.push(format!("{}: at {}: {}", doc.loc(), e.path(), e.inner()));
            return None;
        }
    };
    let back = serde_json::to_value(&t).expect("typed object serializes");
    let mut diffs = Vec::new();
    compare(&doc.value, &back, "$", &mut diffs);
    if diffs.is_empty() {
        Some(t)
    } else {
        problems.extend(diffs.into_iter().map(|d| format!("{}: {d}", doc.loc())));
        None
    }
}

fn load() -> Manifests {
    let mut m = Manifests::default();
    let mut problems = Vec::new();
    for file in listed_resources() {
        let path = deploy_dir().join(&file);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for (index, de) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
            let value = match Value::deserialize(de) {
                Ok(Value::Null) => continue, // an empty document (comments only)
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!(
                        "deploy/{file} (document {}): not YAML: {e}",
                        index + 1
                    ));
                    continue;
                }
            };
            let doc = Doc {
                file: file.clone(),
                index,
                value,
            };
            let api_version = doc.value["apiVersion"].as_str().unwrap_or("");
            let kind = doc.value["kind"].as_str().unwrap_or("");
            match (api_version, kind) {
                ("v1", "Namespace") => m.namespaces.extend(typed(&doc, &mut problems)),
                ("v1", "ServiceAccount") => m.service_accounts.extend(typed(&doc, &mut problems)),
                ("v1", "Service") => m.services.extend(typed(&doc, &mut problems)),
                ("rbac.authorization.k8s.io/v1", "Role") => {
                    m.roles.extend(typed(&doc, &mut problems))
                }
                ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
                    m.role_bindings.extend(typed(&doc, &mut problems))
                }
                ("apps/v1", "Deployment") => m.deployments.extend(typed(&doc, &mut problems)),
                ("networking.k8s.io/v1", "NetworkPolicy") => {
                    m.network_policies.extend(typed(&doc, &mut problems))
                }
                ("monitoring.coreos.com/v1", "ServiceMonitor") => {
                    m.service_monitors.extend(typed(&doc, &mut problems))
                }
                _ => problems.push(format!(
                    "{}: unexpected apiVersion/kind `{api_version}`/`{kind}`",
                    doc.loc()
                )),
            }
            m.docs.push(doc);
        }
    }
    assert!(
        problems.is_empty(),
        "deploy/ manifests are invalid:\n  {}",
        problems.join("\n  ")
    );
    m
}

fn name(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}

fn ns(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("")
}

fn the<'a, T>(items: &'a [T], what: &str) -> &'a T {
    assert_eq!(items.len(), 1, "expected exactly one {what}");
    &items[0]
}

fn labels_match(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn orchestrator_container(d: &Deployment) -> &Container {
    let spec = d.spec.as_ref().expect("deployment spec");
    let pod = spec.template.spec.as_ref().expect("pod spec");
    pod.containers
        .iter()
        .find(|c| c.name == ORCHESTRATOR)
        .expect("container agent-orchestrator")
}

fn env_of(c: &Container) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in c.env.as_deref().unwrap_or_default() {
        let v = e
            .value
            .clone()
            .unwrap_or_else(|| panic!("env {} has no literal value", e.name));
        assert!(
            out.insert(e.name.clone(), v).is_none(),
            "env {} set twice",
            e.name
        );
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
fn every_file_is_listed_and_every_object_parses_strictly() {
    let m = load();
    assert_eq!(m.namespaces.len(), 2, "namespaces");
    assert_eq!(m.service_accounts.len(), 2, "service accounts");
    assert_eq!(m.roles.len(), 1, "roles");
    assert_eq!(m.role_bindings.len(), 1, "role bindings");
    assert_eq!(m.deployments.len(), 1, "deployments");
    assert_eq!(m.services.len(), 1, "services");
    assert_eq!(m.network_policies.len(), 1, "network policies");
    assert_eq!(m.service_monitors.len(), 1, "service monitors");
    // Every namespaced object lives in one of the two namespaces the base creates.
    let created: BTreeSet<&str> = m.namespaces.iter().map(|n| name(&n.metadata)).collect();
    for doc in &m.docs {
        if doc.value["kind"] == "Namespace" {
            assert!(
                doc.value["metadata"].get("namespace").is_none(),
                "{}: a Namespace has no namespace",
                doc.loc()
            );
            continue;
        }
        let n = doc.value["metadata"]["namespace"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no metadata.namespace", doc.loc()));
        assert!(
            created.contains(n),
            "{}: namespace {n} is not created by the base",
            doc.loc()
        );
        assert_eq!(
            doc.value["metadata"]["labels"]["app.kubernetes.io/part-of"],
            ORCHESTRATOR,
            "{}: part-of label",
            doc.loc()
        );
    }
}

#[test]
fn the_strict_parse_rejects_unknown_fields_and_wrong_types() {
    let parse = |v: Value| {
        let doc = Doc {
            file: "inline.yaml".into(),
            index: 0,
            value: v,
        };
        let mut problems = Vec::new();
        let ok = typed::<Deployment>(&doc, &mut problems).is_some();
        (ok, problems.join("\n"))
    };
    let base = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
        "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    assert!(parse(base.clone()).0, "{}", parse(base.clone()).1);
    let mut unknown = base.clone();
    unknown["spec"]["template"]["spec"]["containers"][0]["securityContxt"] =
        json!({"runAsNonRoot": true});
    let (ok, msg) = parse(unknown);
    assert!(
        !ok && msg.contains("$.spec.template.spec.containers[0].securityContxt: unknown field"),
        "{msg}"
    );
    let mut wrong = base.clone();
    wrong["spec"]["replicas"] = json!("one");
    let (ok, msg) = parse(wrong);
    assert!(!ok && msg.contains("spec.replicas"), "{msg}");
    let mut wrong_kind = base;
    wrong_kind["kind"] = json!("StatefulSet");
    assert!(!parse(wrong_kind).0);
    // The YAML parser reads `0440` as a string (YAML 1.2), so octal modes must be decimal.
    let v: Value = serde_yaml_ng::from_str("mode: 0440").unwrap();
    assert_eq!(v["mode"], "0440");
}

#[test]
fn namespaces_enforce_the_restricted_pod_security_standard() {
    let m = load();
    let by_name: BTreeMap<&str, &Namespace> = m
        .namespaces
        .iter()
        .map(|n| (name(&n.metadata), n))
        .collect();
    assert_eq!(
        by_name.keys().copied().collect::<Vec<_>>(),
        vec![WORKER_NS, CONTROL_PLANE_NS]
    );
    for (n, namespace) in by_name {
        let labels = namespace.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels
                .get("pod-security.kubernetes.io/enforce")
                .map(String::as_str),
            Some("restricted"),
            "namespace {n} must enforce the restricted Pod Security Standard"
        );
        for (k, v) in &labels {
            if let Some(mode) = k.strip_prefix("pod-security.kubernetes.io/") {
                if mode.ends_with("-version") {
                    assert!(
                        v == "latest" || v.starts_with("v1."),
                        "namespace {n}: {k}={v}"
                    );
                } else {
                    assert!(
                        ["enforce", "audit", "warn"].contains(&mode),
                        "namespace {n}: unknown PSA label {k}"
                    );
                    assert!(
                        ["privileged", "baseline", "restricted"].contains(&v.as_str()),
                        "namespace {n}: {k}={v}"
                    );
                }
            }
        }
    }
}

/// The verbs each resource needs, derived from the runtime's calls on its `Api<Pod>` and
/// `Api<Secret>` handles (whitespace-collapsed source text, so chained calls are seen too).
fn verbs_used_by_runtime() -> BTreeSet<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut used = BTreeSet::new();
    let mut add =
        |resource: &str, verb: &str| used.insert((resource.to_string(), verb.to_string()));
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text: String = std::fs::read_to_string(&path)
            .unwrap()
            .split_whitespace()
            .collect();
        assert!(
            !text.contains("Api::all("),
            "{}: cluster-wide Api needs a ClusterRole",
            path.display()
        );
        for (handle, resource) in [("pods.", "pods"), ("secrets.", "secrets")] {
            for (at, _) in text.match_indices(handle) {
                let before = &text[..at];
                if !(before.ends_with("inner.") || before.ends_with("self.")) {
                    continue;
                }
                let rest = &text[at + handle.len()..];
                let method: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                match (resource, method.as_str()) {
                    (_, "create") => add(resource, "create"),
                    (_, "delete") => add(resource, "delete"),
                    (_, "get" | "get_opt") => add(resource, "get"),
                    (_, "list") => add(resource, "list"),
                    ("pods", "log_stream" | "logs") => add("pods/log", "get"),
                    // The pod watcher (`watcher(inner.pods.clone(), ..)`) lists, then watches.
                    ("pods", "clone") => {
                        add(resource, "list");
                        add(resource, "watch")
                    }
                    (r, other) => panic!(
                        "{}: `{r}.{other}` is not mapped to an RBAC verb: update deploy/rbac.yaml and this test",
                        path.display()
                    ),
                };
            }
        }
    }
    used
}

#[test]
fn the_role_grants_exactly_what_the_runtime_uses() {
    let m = load();
    for doc in &m.docs {
        let kind = doc.value["kind"].as_str().unwrap_or("");
        assert!(
            !kind.starts_with("Cluster"),
            "{}: nothing cluster-wide",
            doc.loc()
        );
    }
    let expected: BTreeSet<(String, String)> = [
        ("pods", "create"),
        ("pods", "delete"),
        ("pods", "get"),
        ("pods", "list"),
        ("pods", "watch"),
        ("pods/log", "get"),
        ("secrets", "create"),
        ("secrets", "delete"),
    ]
    .into_iter()
    .map(|(r, v)| (r.to_string(), v.to_string()))
    .collect();
    assert_eq!(
        verbs_used_by_runtime(),
        expected,
        "the runtime's API calls changed: update deploy/rbac.yaml"
    );

    let role = the(&m.roles, "Role");
    assert_eq!(name(&role.metadata), ORCHESTRATOR);
    assert_eq!(ns(&role.metadata), WORKER_NS);
    let mut granted = BTreeSet::new();
    for rule in role.rules.as_deref().unwrap_or_default() {
        assert_eq!(
            rule.api_groups.as_deref(),
            Some(&[String::new()][..]),
            "only the core API group: {rule:?}"
        );
        assert!(
            rule.resource_names.is_none() && rule.non_resource_urls.is_none(),
            "{rule:?}"
        );
        for r in rule.resources.as_deref().unwrap_or_default() {
            for v in &rule.verbs {
                assert!(r != "*" && v != "*", "no wildcards: {rule:?}");
                assert!(
                    granted.insert((r.clone(), v.clone())),
                    "{r} {v} granted twice"
                );
            }
        }
    }
    assert_eq!(
        granted, expected,
        "the Role must grant exactly what the runtime uses"
    );

    let rb = the(&m.role_bindings, "RoleBinding");
    assert_eq!(ns(&rb.metadata), WORKER_NS);
    assert_eq!(rb.role_ref.api_group, "rbac.authorization.k8s.io");
    assert_eq!(rb.role_ref.kind, "Role");
    assert_eq!(rb.role_ref.name, ORCHESTRATOR);
    let subjects = rb.subjects.as_deref().unwrap_or_default();
    assert_eq!(subjects.len(), 1, "{subjects:?}");
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(subjects[0].name, ORCHESTRATOR);
    assert_eq!(subjects[0].namespace.as_deref(), Some(CONTROL_PLANE_NS));
    assert!(
        m.service_accounts
            .iter()
            .any(|sa| name(&sa.metadata) == ORCHESTRATOR && ns(&sa.metadata) == CONTROL_PLANE_NS),
        "the bound ServiceAccount exists"
    );
}

#[test]
fn the_deployment_runs_the_orchestrator_hardened_and_probed() {
    let m = load();
    let d = the(&m.deployments, "Deployment");
    assert_eq!(name(&d.metadata), ORCHESTRATOR);
    assert_eq!(ns(&d.metadata), CONTROL_PLANE_NS);
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(
        spec.replicas,
        Some(1),
        "SQLite on an emptyDir: a single replica"
    );
    assert_eq!(
        spec.strategy.as_ref().and_then(|s| s.type_.as_deref()),
        Some("Recreate")
    );
    let template_labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let selector = spec.selector.match_labels.clone().unwrap_or_default();
    assert!(
        !selector.is_empty() && labels_match(&selector, &template_labels),
        "selector matches the pod template"
    );
    let pod = spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some(ORCHESTRATOR));
    assert_ne!(
        pod.automount_service_account_token,
        Some(false),
        "the orchestrator talks to the Kubernetes API"
    );

    let psc = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(psc.run_as_non_root, Some(true));
    assert!(
        psc.run_as_user.is_some_and(|u| u != 0),
        "pod runAsUser is not root"
    );
    assert_eq!(
        psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );

    assert_eq!(pod.containers.len(), 1);
    let c = orchestrator_container(d);
    let sc = c
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_ne!(sc.run_as_non_root, Some(false));
    assert!(
        sc.run_as_user.or(psc.run_as_user).is_some_and(|u| u != 0),
        "container runAsUser is not root"
    );
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_ne!(sc.privileged, Some(true));
    let caps = sc.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    assert!(
        caps.add.as_deref().unwrap_or_default().is_empty(),
        "no added capabilities"
    );
    let seccomp = sc.seccomp_profile.as_ref().or(psc.seccomp_profile.as_ref());
    assert_eq!(seccomp.map(|s| s.type_.as_str()), Some("RuntimeDefault"));

    let ports = c.ports.as_deref().unwrap_or_default();
    assert_eq!(ports.len(), 1);
    let port = &ports[0];
    assert_eq!(port.container_port, ORCHESTRATOR_PORT);
    let port_name = port.name.clone().expect("the port is named");
    let probe_port = |p: &Option<k8s_openapi::api::core::v1::Probe>, what: &str| {
        let get = p
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("{what} probe is an httpGet"));
        let on_port = match &get.port {
            IntOrString::Int(n) => *n == port.container_port,
            IntOrString::String(s) => *s == port_name,
        };
        assert!(
            on_port,
            "{what} probe uses the container port: {:?}",
            get.port
        );
        get.path.clone().unwrap_or_default()
    };
    assert_eq!(probe_port(&c.liveness_probe, "liveness"), "/healthz");
    assert_eq!(probe_port(&c.readiness_probe, "readiness"), "/readyz");

    let res = c.resources.as_ref().expect("resources");
    for (what, q) in [("requests", &res.requests), ("limits", &res.limits)] {
        let q = q.as_ref().unwrap_or_else(|| panic!("resources.{what}"));
        for key in ["cpu", "memory"] {
            assert!(q.contains_key(key), "resources.{what}.{key}");
        }
    }

    // Writable paths are volumes; the API tokens are a read-only Secret mount (mode 0440).
    let volumes = pod.volumes.as_deref().unwrap_or_default();
    for mount in c.volume_mounts.as_deref().unwrap_or_default() {
        assert!(
            volumes.iter().any(|v| v.name == mount.name),
            "mount {} has a volume",
            mount.name
        );
    }
    let tokens = volumes
        .iter()
        .find_map(|v| v.secret.as_ref())
        .expect("an API tokens secret volume");
    assert_eq!(tokens.default_mode, Some(0o440));

    let env = env_of(c);
    assert_eq!(
        env.get("AO_RUNTIME").map(String::as_str),
        Some("kubernetes")
    );
    assert_eq!(
        env.get("AO_K8S_NAMESPACE").map(String::as_str),
        Some(WORKER_NS)
    );
    let listen = env.get("AO_LISTEN").expect("AO_LISTEN");
    assert!(
        listen.ends_with(&format!(":{}", port.container_port)),
        "AO_LISTEN {listen} is the container port"
    );
    let callback = env.get("AO_CALLBACK_URL").expect("AO_CALLBACK_URL");
    let svc = the(&m.services, "Service");
    assert_eq!(
        callback,
        &format!(
            "http://{}.{}.svc:{}",
            name(&svc.metadata),
            ns(&svc.metadata),
            ORCHESTRATOR_PORT
        ),
        "workers call back through the Service"
    );
}

/// `AO_*` names declared with `env = "AO_..."` in the `serve` flags (and the global flags).
fn serve_env_names() -> BTreeSet<String> {
    let root = repo_root();
    let mut names = BTreeSet::new();
    for file in [
        "crates/agent-orchestrator/src/config.rs",
        "crates/agent-orchestrator/src/cli.rs", // global flags such as AO_LOG_FORMAT
        "crates/ao-runtime-kube/src/config.rs",
    ] {
        let text =
            std::fs::read_to_string(root.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        for (at, _) in text.match_indices("env = \"AO_") {
            let rest = &text[at + "env = \"".len()..];
            let end = rest.find('"').expect("closing quote");
            names.insert(rest[..end].to_string());
        }
    }
    assert!(
        names.contains("AO_RUNTIME") && names.contains("AO_K8S_NAMESPACE"),
        "{names:?}"
    );
    names
}

#[derive(Parser)]
struct KubeFlags {
    #[command(flatten)]
    kube: KubeArgs,
}

#[test]
fn the_deployment_sets_only_real_serve_flags() {
    let m = load();
    let env = env_of(orchestrator_container(the(&m.deployments, "Deployment")));
    let known = serve_env_names();
    // Worker settings are not flags: the orchestrator copies them into worker pods.
    let settings = &ao_core::worker::settings::SETTINGS;
    let is_setting = |k: &str| settings.iter().any(|s| s.name == k && !s.secret);
    let unknown: Vec<&String> = env
        .keys()
        .filter(|k| k.starts_with("AO_") && !known.contains(*k) && !is_setting(k))
        .collect();
    assert!(
        unknown.is_empty(),
        "AO_ variables that are no flag of `agent-orchestrator serve` nor a worker setting: {unknown:?}"
    );
    for s in settings.iter().filter(|s| s.secret) {
        assert!(
            !env.contains_key(s.name),
            "{} belongs in the worker Secret",
            s.name
        );
    }

    // The Kubernetes runtime's own flags parse, and describe the objects of the base.
    let cmd = KubeFlags::command();
    let mut argv = vec!["serve".to_string()];
    for arg in cmd.get_arguments() {
        let Some(var) = arg.get_env() else { continue };
        if let Some(v) = env.get(var.to_str().unwrap()) {
            argv.push(format!("--{}={v}", arg.get_long().unwrap()));
        }
    }
    let cfg = KubeFlags::try_parse_from(&argv)
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"))
        .kube
        .into_config();
    assert_eq!(cfg.namespace, WORKER_NS);
    let worker_sa = m
        .service_accounts
        .iter()
        .find(|sa| name(&sa.metadata) == cfg.service_account && ns(&sa.metadata) == cfg.namespace)
        .unwrap_or_else(|| {
            panic!(
                "worker ServiceAccount {}/{} is in the base",
                cfg.namespace, cfg.service_account
            )
        });
    assert_eq!(
        worker_sa.automount_service_account_token,
        Some(false),
        "workers get no API token"
    );
}

#[test]
fn the_network_policy_isolates_the_worker_pods_the_runtime_creates() {
    let m = load();
    let np = the(&m.network_policies, "NetworkPolicy");
    assert_eq!(ns(&np.metadata), WORKER_NS);
    let spec = np.spec.as_ref().expect("spec");
    let selector = spec.pod_selector.clone().unwrap_or_default();
    assert!(selector.match_expressions.is_none());
    let sel = selector.match_labels.clone().unwrap_or_default();
    assert_eq!(
        sel,
        BTreeMap::from([("app".to_string(), "claude-worker".to_string())])
    );
    assert_eq!(
        spec.policy_types.as_deref(),
        Some(&["Ingress".to_string(), "Egress".to_string()][..])
    );
    assert!(
        spec.ingress.as_deref().unwrap_or_default().is_empty(),
        "no ingress at all"
    );

    // The pods the runtime builds, configured as in the Deployment, are the ones selected.
    let env = env_of(orchestrator_container(the(&m.deployments, "Deployment")));
    let mut argv = vec!["serve".to_string()];
    for arg in KubeFlags::command().get_arguments() {
        if let Some(v) = arg.get_env().and_then(|var| env.get(var.to_str().unwrap())) {
            argv.push(format!("--{}={v}", arg.get_long().unwrap()));
        }
    }
    let cfg = KubeFlags::try_parse_from(&argv).unwrap().kube.into_config();
    let task: Task = serde_json::from_value(json!({
        "id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "status": "starting", "reason": "scheduled",
        "prompt": "p", "timeout_seconds": 60, "created_at": "2026-01-01T00:00:00Z"
    }))
    .expect("task");
    let callback = Callback {
        url: env["AO_CALLBACK_URL"].clone(),
        token: "t".into(),
    };
    let pod = build_pod(
        &cfg,
        &LaunchSpec {
            task,
            callback: Some(callback),
        },
    );
    assert_eq!(pod.metadata.namespace.as_deref(), Some(ns(&np.metadata)));
    let pod_labels = pod.metadata.labels.clone().unwrap_or_default();
    assert!(sel.contains_key(LABEL_APP));
    assert!(
        labels_match(&sel, &pod_labels),
        "NetworkPolicy {sel:?} selects worker pods {pod_labels:?}"
    );

    // Egress: DNS (53 UDP+TCP), HTTPS (443), and the orchestrator's port in the control plane.
    let svc = the(&m.services, "Service");
    let orchestrator_pods = the(&m.deployments, "Deployment")
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    let mut allowed = BTreeSet::new();
    for rule in spec.egress.as_deref().unwrap_or_default() {
        let ports = rule.ports.as_deref().unwrap_or_default();
        assert!(
            !ports.is_empty(),
            "every egress rule names its ports: {rule:?}"
        );
        let peers = rule.to.as_deref().unwrap_or_default();
        assert!(
            !peers.is_empty(),
            "every egress rule names its peers: {rule:?}"
        );
        for p in ports {
            let number = match &p.port {
                Some(IntOrString::Int(n)) => *n,
                other => panic!("egress ports are numbers: {other:?}"),
            };
            assert!(p.end_port.is_none(), "no port ranges: {p:?}");
            let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            match number {
                53 => {
                    for peer in peers {
                        let nsl = peer
                            .namespace_selector
                            .as_ref()
                            .and_then(|s| s.match_labels.clone())
                            .unwrap_or_default();
                        assert_eq!(
                            nsl.get("kubernetes.io/metadata.name").map(String::as_str),
                            Some("kube-system"),
                            "DNS goes to kube-system"
                        );
                    }
                }
                443 => assert_eq!(proto, "TCP"),
                ORCHESTRATOR_PORT => {
                    assert_eq!(proto, "TCP");
                    for peer in peers {
                        assert!(
                            peer.ip_block.is_none(),
                            "the orchestrator port only towards the orchestrator"
                        );
                        let nsl = peer
                            .namespace_selector
                            .as_ref()
                            .and_then(|s| s.match_labels.clone())
                            .unwrap_or_default();
                        assert_eq!(
                            nsl.get("kubernetes.io/metadata.name").map(String::as_str),
                            Some(CONTROL_PLANE_NS)
                        );
                        let pl = peer
                            .pod_selector
                            .as_ref()
                            .and_then(|s| s.match_labels.clone())
                            .unwrap_or_default();
                        assert!(
                            !pl.is_empty() && labels_match(&pl, &orchestrator_pods),
                            "peer pods {pl:?} are the orchestrator's"
                        );
                    }
                }
                other => panic!("egress to port {other} is not allowed"),
            }
            allowed.insert((number, proto));
        }
    }
    let expected: BTreeSet<(i32, String)> = [
        (53, "UDP"),
        (53, "TCP"),
        (443, "TCP"),
        (ORCHESTRATOR_PORT, "TCP"),
    ]
    .into_iter()
    .map(|(n, p)| (n, p.to_string()))
    .collect();
    assert_eq!(allowed, expected);
    // The callback URL the workers get goes through a port the policy allows.
    assert!(
        svc.spec
            .as_ref()
            .unwrap()
            .ports
            .as_deref()
            .unwrap()
            .iter()
            .any(|p| p.port == ORCHESTRATOR_PORT)
    );
}

#[test]
fn the_service_and_service_monitor_reach_the_orchestrator() {
    let m = load();
    let d = the(&m.deployments, "Deployment");
    let c = orchestrator_container(d);
    let pod_labels = d
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap();
    let port_name = c.ports.as_deref().unwrap()[0].name.clone().unwrap();

    let svc = the(&m.services, "Service");
    assert_eq!(name(&svc.metadata), ORCHESTRATOR);
    assert_eq!(ns(&svc.metadata), CONTROL_PLANE_NS);
    let spec = svc.spec.as_ref().unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    let sel = spec.selector.clone().unwrap_or_default();
    assert!(
        !sel.is_empty() && labels_match(&sel, &pod_labels),
        "Service selects the orchestrator pods"
    );
    let ports = spec.ports.as_deref().unwrap_or_default();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].port, ORCHESTRATOR_PORT);
    assert_eq!(
        ports[0].target_port,
        Some(IntOrString::String(port_name.clone()))
    );

    let sm = the(&m.service_monitors, "ServiceMonitor");
    assert_eq!(
        (sm.api_version.as_str(), sm.kind.as_str()),
        ("monitoring.coreos.com/v1", "ServiceMonitor")
    );
    assert_eq!(ns(&sm.metadata), CONTROL_PLANE_NS);
    let svc_labels = svc.metadata.labels.clone().unwrap_or_default();
    let sm_sel = sm.spec.selector.match_labels.clone().unwrap_or_default();
    assert!(
        !sm_sel.is_empty() && labels_match(&sm_sel, &svc_labels),
        "ServiceMonitor selects the Service"
    );
    if let Some(nsel) = &sm.spec.namespace_selector {
        assert!(nsel.any == Some(true) || nsel.match_names.iter().any(|n| n == CONTROL_PLANE_NS));
    }
    assert_eq!(sm.spec.endpoints.len(), 1);
    let ep = &sm.spec.endpoints[0];
    assert_eq!(
        ep.port.as_deref(),
        ports[0].name.as_deref(),
        "scrapes the Service's named port"
    );
    assert_eq!(ep.path.as_deref(), Some("/metrics"));
}
