//! The Role of `deploy/rbac.yaml` is sufficient and minimal for the real orchestrator on the
//! real API server, as its own ServiceAccount (a TokenRequest token, never admin):
//!
//! - sufficient: the [`scenario`] with the Role as it is ends right, the ServiceAccount
//!   gets no 403, and `doctor` passes;
//! - minimal: for each (resource, verb) the Role grants, read from the YAML so a verb added
//!   later is covered too, the scenario with the Role minus that one verb gets a 403 for
//!   exactly that resource and verb, and `doctor` fails naming it (the report also says what
//!   went wrong after it). The cases run at once, each in its own namespaces.

use super::scenario::{self, Grant, Outcome, role_grants};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_role_from_deploy_is_sufficient_for_the_orchestrators_service_account() {
    let o = scenario::run(None, scenario::STEP).await;
    eprintln!(
        "sufficient: {:.1} s; the ServiceAccount used {:?}",
        o.secs, o.used
    );
    assert!(
        o.forbidden.is_empty(),
        "403s for the orchestrator: {:?}",
        o.forbidden
    );
    assert!(
        o.failures.is_empty(),
        "the scenario went wrong:\n{}",
        o.failures.join("\n")
    );
    let (code, checklist) = &o.doctor;
    assert_eq!(
        *code,
        Some(0),
        "doctor with the Role of deploy/:\n{checklist}"
    );
    for check in ["kubernetes_cluster", "kubernetes_secret", "kubernetes_rbac"] {
        assert!(
            checklist.contains(&format!("[ok]   {check}")),
            "doctor with the Role of deploy/ has no [ok] {check}:\n{checklist}"
        );
    }
    let mut grants: std::collections::BTreeSet<Grant> = role_grants().into_iter().collect();
    // The start-up checks ask the API server what the Role allows: a SelfSubjectAccessReview,
    // which Kubernetes' default `system:basic-user` ClusterRole grants every user.
    grants.insert(("selfsubjectaccessreviews".into(), "create".into()));
    let outside: Vec<&Grant> = o.used.difference(&grants).collect();
    assert!(
        outside.is_empty(),
        "used but not granted (and not refused?): {outside:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_verb_of_the_role_is_necessary() {
    let grants = role_grants();
    assert!(!grants.is_empty());
    let cases: Vec<_> = grants
        .iter()
        .cloned()
        .map(|g| {
            tokio::spawn(async move {
                (
                    g.clone(),
                    scenario::run(Some(g), scenario::STEP_WITHOUT_A_VERB).await,
                )
            })
        })
        .collect();
    let mut report = Vec::new();
    let mut unnecessary = Vec::new();
    for case in cases {
        let ((resource, verb), o): (Grant, Outcome) = case.await.expect("a case panicked");
        let refused = o.forbidden.contains(&(resource.clone(), verb.clone()));
        let others: Vec<&Grant> = o
            .forbidden
            .iter()
            .filter(|g| **g != (resource.clone(), verb.clone()))
            .collect();
        assert!(
            others.is_empty(),
            "without {verb} {resource}, other 403s: {others:?}"
        );
        // doctor asks the API server (SelfSubjectAccessReview) and names the missing verb.
        let (code, checklist) = &o.doctor;
        let missing = format!("{verb} {resource}");
        assert!(
            *code != Some(0)
                && checklist
                    .lines()
                    .any(|l| l.starts_with("[FAIL] kubernetes_rbac") && l.contains(&missing)),
            "doctor without {missing} did not block naming it ({code:?}):\n{checklist}"
        );
        let said = checklist
            .lines()
            .find(|l| l.starts_with("[FAIL] kubernetes_rbac"))
            .unwrap_or_default();
        report.push(format!(
            "without {verb:>6} {resource:<9}: {} ({:.1} s); doctor: {said}{}",
            if refused { "403 for it" } else { "no 403" },
            o.secs,
            if o.failures.is_empty() {
                String::new()
            } else {
                format!("; {}", o.failures.join("; "))
            }
        ));
        // The 403 is the evidence; a step that went wrong without one may be a slow server.
        if !refused {
            unnecessary.push(format!("{verb} {resource}"));
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        unnecessary.is_empty(),
        "granted but not needed (remove them from deploy/rbac.yaml): {unnecessary:?}\n{}",
        report.join("\n")
    );
}
