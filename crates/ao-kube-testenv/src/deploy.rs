//! `deploy/`'s RBAC rendered into a test's own namespaces, so every real-API-server test and
//! benchmark grants the orchestrator exactly what production grants it, from one reading of
//! `deploy/rbac.yaml`.

use std::path::Path;

use serde::de::DeserializeOwned;

/// The objects of kind `K` (`Role`, `RoleBinding`) in `deploy/rbac.yaml`, moved from `agents`
/// to `ns`, their ServiceAccount subjects from `agents-control-plane` to `control_ns`. Panics
/// when the file can't be read, holds no `K`, or names another subject namespace.
pub fn deploy_rbac<K: DeserializeOwned>(ns: &str, control_ns: &str) -> Vec<K> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/rbac.yaml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let kind = std::any::type_name::<K>()
        .rsplit("::")
        .next()
        .expect("a type name");
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let mut v: serde_json::Value =
            serde::Deserialize::deserialize(doc).expect("deploy/rbac.yaml is YAML");
        if v["kind"] != kind {
            continue;
        }
        v["metadata"]["namespace"] = ns.into();
        if let Some(subjects) = v["subjects"].as_array_mut() {
            for s in subjects {
                assert_eq!(
                    s["namespace"], "agents-control-plane",
                    "an unexpected subject in deploy/rbac.yaml: {s}"
                );
                s["namespace"] = control_ns.into();
            }
        }
        out.push(serde_json::from_value(v).expect("a valid RBAC object"));
    }
    assert!(!out.is_empty(), "no {kind} in deploy/rbac.yaml");
    out
}
