//! The Role and its binding: namespaced, core group only, no wildcards, bound to the
//! orchestrator's ServiceAccount. (Which verbs it grants is checked against the calls the
//! runtime makes in `tests/e2e/rbac.rs`, on the simulator, and proven sufficient and minimal
//! on a real API server by `crates/agent-orchestrator/tests/kube_deploy/rbac.rs`.)

use super::*;

#[test]
fn the_role_is_namespaced_narrow_and_bound_to_the_orchestrator() {
    let m = load();
    for doc in &m.docs {
        let kind = doc.value["kind"].as_str().unwrap_or("");
        assert!(
            !kind.starts_with("Cluster"),
            "{}: nothing cluster-wide",
            doc.loc()
        );
    }
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
    assert!(!granted.is_empty(), "the Role grants something");

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
