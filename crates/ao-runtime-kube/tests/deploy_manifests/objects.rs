//! Every listed file parses strictly into its typed object, the base holds only built-in kinds
//! (the ServiceMonitor is a component), and the namespaces enforce the restricted Pod Security
//! Standard.

use super::*;

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

/// `kubectl apply -k deploy/` must work on a cluster without the Prometheus Operator: nothing
/// in the base needs a CRD; the ServiceMonitor is the `servicemonitor` component alone.
#[test]
fn the_base_needs_no_crd_and_the_service_monitor_is_a_component() {
    let m = load();
    let builtin = [
        "v1",
        "apps/v1",
        "rbac.authorization.k8s.io/v1",
        "networking.k8s.io/v1",
    ];
    let mut in_component = BTreeMap::<String, Vec<String>>::new();
    for doc in &m.docs {
        let api_version = doc.value["apiVersion"].as_str().unwrap_or("");
        let kind = doc.value["kind"].as_str().unwrap_or("");
        match &doc.component {
            None => assert!(
                builtin.contains(&api_version),
                "{}: the base must apply without CRDs, but has {api_version} {kind}",
                doc.loc()
            ),
            Some(c) => in_component
                .entry(c.clone())
                .or_default()
                .push(format!("{api_version} {kind}")),
        }
    }
    assert_eq!(
        in_component,
        BTreeMap::from([(
            "servicemonitor".to_string(),
            vec!["monitoring.coreos.com/v1 ServiceMonitor".to_string()]
        )])
    );
}

#[test]
fn the_strict_parse_rejects_unknown_fields_and_wrong_types() {
    let parse = |v: Value| {
        let doc = Doc {
            file: "inline.yaml".into(),
            index: 0,
            value: v,
            component: None,
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
