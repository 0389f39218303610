//! The kustomize base in `deploy/` and its components in `deploy/components/`: every file is
//! listed in its `kustomization.yaml`, the base holds only built-in kinds (so it applies on a
//! cluster without the Prometheus Operator), every object
//! parses strictly into its typed Kubernetes struct (an unknown field or a wrong type fails),
//! and the objects agree with what the Kubernetes runtime actually does: the Role is
//! namespaced and bound to the orchestrator (that it grants exactly the calls the runtime
//! makes is checked against the simulator's request log, in `tests/e2e/rbac.rs`, and on a real
//! API server in `agent-orchestrator`'s `tests/kube_deploy`), the
//! Deployment configures real `serve` flags, and the NetworkPolicy selects the pods
//! `build_pod` creates. The HA overlay (`overlays/ha`, next to `deploy/`) is rendered with
//! kustomize and held to the same strict parse (`ha`).
//!
//! This file loads and strictly parses the manifests; each module checks one area.

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
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

mod deployment;
mod ha;
mod network;
mod objects;
mod rbac;

const CONTROL_PLANE_NS: &str = "agents-control-plane";
const WORKER_NS: &str = "agents";
const ORCHESTRATOR: &str = "agent-orchestrator";
const ORCHESTRATOR_PORT: i32 = 8080;

/// The Kubernetes runtime's flags alone, as `serve` flattens them.
#[derive(Parser)]
struct KubeFlags {
    #[command(flatten)]
    kube: KubeArgs,
}

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
    /// The file, relative to the repository (or the overlay it was rendered from).
    file: String,
    index: usize,
    value: Value,
    /// The kustomize Component the file belongs to (`None`: the base itself).
    component: Option<String>,
}

impl Doc {
    fn loc(&self) -> String {
        let kind = self.value["kind"].as_str().unwrap_or("?");
        let name = self.value["metadata"]["name"].as_str().unwrap_or("?");
        format!("{} (document {}, {kind}/{name})", self.file, self.index + 1)
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
    /// Only in an overlay (`overlays/ha`); the base has none.
    pod_disruption_budgets: Vec<PodDisruptionBudget>,
    service_monitors: Vec<ServiceMonitor>,
}

/// The components under `deploy/components/` (each a directory with a kustomization).
fn components() -> Vec<String> {
    let dir = deploy_dir().join("components");
    let mut out: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// The `resources:` of `<dir>/kustomization.yaml` (a `kind`: `Kustomization` for the base,
/// `Component` for a component), checked against the YAML files present in `dir`.
fn listed_resources(dir: &Path, kind: &str) -> Vec<String> {
    let path = dir.join("kustomization.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let k: Value = serde_yaml_ng::from_str(&text).expect("kustomization.yaml is YAML");
    let api_version = match kind {
        "Component" => "kustomize.config.k8s.io/v1alpha1",
        _ => "kustomize.config.k8s.io/v1beta1",
    };
    assert_eq!(
        k["apiVersion"],
        api_version,
        "{}: apiVersion",
        path.display()
    );
    assert_eq!(k["kind"], kind, "{}: kind", path.display());
    let resources: Vec<String> = k["resources"]
        .as_array()
        .unwrap_or_else(|| panic!("{} has a `resources:` list", path.display()))
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
    for entry in std::fs::read_dir(dir).expect("the kustomization's directory exists") {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if (name.ends_with(".yaml") || name.ends_with(".yml")) && name != "kustomization.yaml" {
            present.insert(name);
        }
    }
    let listed: BTreeSet<String> = resources.iter().cloned().collect();
    let unlisted: Vec<&String> = present.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "YAML files in {} not listed in its kustomization.yaml resources: {unlisted:?}",
        dir.display()
    );
    let missing: Vec<&String> = listed.difference(&present).collect();
    assert!(
        missing.is_empty(),
        "{} lists files that are not there: {missing:?}",
        path.display()
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
    let mut files: Vec<(String, Option<String>)> = listed_resources(&deploy_dir(), "Kustomization")
        .into_iter()
        .map(|f| (f, None))
        .collect();
    for c in components() {
        let dir = deploy_dir().join("components").join(&c);
        for f in listed_resources(&dir, "Component") {
            files.push((format!("components/{c}/{f}"), Some(c.clone())));
        }
    }
    for (file, component) in files {
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
                file: format!("deploy/{file}"),
                index,
                value,
                component: component.clone(),
            };
            add(&mut m, doc, &mut problems);
        }
    }
    assert!(
        problems.is_empty(),
        "deploy/ manifests are invalid:\n  {}",
        problems.join("\n  ")
    );
    m
}

/// Parses `doc` strictly into its typed object (a problem when it does not) and keeps it.
fn add(m: &mut Manifests, doc: Doc, problems: &mut Vec<String>) {
    let api_version = doc.value["apiVersion"].as_str().unwrap_or("");
    let kind = doc.value["kind"].as_str().unwrap_or("");
    match (api_version, kind) {
        ("v1", "Namespace") => m.namespaces.extend(typed(&doc, problems)),
        ("v1", "ServiceAccount") => m.service_accounts.extend(typed(&doc, problems)),
        ("v1", "Service") => m.services.extend(typed(&doc, problems)),
        ("rbac.authorization.k8s.io/v1", "Role") => m.roles.extend(typed(&doc, problems)),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
            m.role_bindings.extend(typed(&doc, problems))
        }
        ("apps/v1", "Deployment") => m.deployments.extend(typed(&doc, problems)),
        ("networking.k8s.io/v1", "NetworkPolicy") => {
            m.network_policies.extend(typed(&doc, problems))
        }
        ("policy/v1", "PodDisruptionBudget") => {
            m.pod_disruption_budgets.extend(typed(&doc, problems))
        }
        ("monitoring.coreos.com/v1", "ServiceMonitor") => {
            m.service_monitors.extend(typed(&doc, problems))
        }
        _ => problems.push(format!(
            "{}: unexpected apiVersion/kind `{api_version}`/`{kind}`",
            doc.loc()
        )),
    }
    m.docs.push(doc);
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
