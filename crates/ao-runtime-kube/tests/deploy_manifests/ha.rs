//! The HA overlay (`overlays/ha`: 3 replicas on PostgreSQL) as `kubectl kustomize` renders it:
//! every object parses strictly into its typed struct (a misspelt field in the overlay's patch
//! or its PodDisruptionBudget fails here, where kustomize would pass it through), the PDB and
//! the anti-affinity select the Deployment's pods, the database URL only comes from a Secret,
//! and the Deployment sets only real `serve` flags. What the overlay adds and leaves alone is
//! also checked on the render by `tests/shell/deploy-ha.bats`.

use std::process::Command;

use super::*;

/// The objects of `kubectl kustomize overlays/ha`, strictly parsed.
fn render_ha() -> Manifests {
    let dir = repo_root().join("overlays/ha");
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .expect("kubectl is on PATH (it renders the kustomize overlay)");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("kustomize renders UTF-8");
    let mut m = Manifests::default();
    let mut problems = Vec::new();
    for (index, de) in serde_yaml_ng::Deserializer::from_str(&text).enumerate() {
        let value = Value::deserialize(de).expect("kustomize renders YAML");
        let doc = Doc {
            file: "overlays/ha (rendered)".to_string(),
            index,
            value,
            component: None,
        };
        add(&mut m, doc, &mut problems);
    }
    assert!(
        problems.is_empty(),
        "overlays/ha renders invalid objects:\n  {}",
        problems.join("\n  ")
    );
    m
}

#[test]
fn the_ha_overlay_renders_strictly_typed_objects_that_select_the_orchestrator() {
    let m = render_ha();
    assert!(m.service_monitors.is_empty(), "no CRD kinds in the overlay");
    let d = the(&m.deployments, "Deployment");
    let spec = d.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(3));
    let labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();

    let pdb = the(&m.pod_disruption_budgets, "PodDisruptionBudget");
    assert_eq!(ns(&pdb.metadata), ns(&d.metadata));
    let pdb_spec = pdb.spec.as_ref().expect("PDB spec");
    assert_eq!(pdb_spec.max_unavailable, Some(IntOrString::Int(1)));
    let selects = |s: Option<&LabelSelector>| {
        let s = s.expect("a label selector");
        let ml = s.match_labels.clone().unwrap_or_default();
        !ml.is_empty() && s.match_expressions.is_none() && labels_match(&ml, &labels)
    };
    assert!(
        selects(pdb_spec.selector.as_ref()),
        "the PDB selects the pods"
    );

    let pod = spec.template.spec.as_ref().unwrap();
    let anti = pod
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .expect("pod anti-affinity");
    assert!(
        anti.required_during_scheduling_ignored_during_execution
            .is_none(),
        "preferred only: 3 replicas still schedule on a one-node K3s"
    );
    let preferred = anti
        .preferred_during_scheduling_ignored_during_execution
        .as_deref()
        .unwrap_or_default();
    assert_eq!(preferred.len(), 1);
    let term = &preferred[0].pod_affinity_term;
    assert_eq!(term.topology_key, "kubernetes.io/hostname");
    assert!(selects(term.label_selector.as_ref()), "spreads the pods");

    let env = orchestrator_container(d).env.as_deref().unwrap_or_default();
    let url = env
        .iter()
        .find(|e| e.name == "AO_DATABASE_URL")
        .expect("AO_DATABASE_URL");
    assert!(url.value.is_none(), "the database URL is never a literal");
    let key = url
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .expect("AO_DATABASE_URL from a secretKeyRef");
    assert_eq!(
        (key.name.as_str(), key.key.as_str()),
        ("orchestrator-database", "url")
    );
    assert_eq!(key.optional, Some(false));
}

/// Like `the_deployment_sets_only_real_serve_flags` for the base: an `AO_*` variable that no
/// flag reads would be ignored without a word.
#[test]
fn the_ha_overlay_sets_only_real_serve_flags() {
    let m = render_ha();
    let c = orchestrator_container(the(&m.deployments, "Deployment"));
    let known = deployment::serve_env_names();
    let settings = &ao_core::worker::settings::SETTINGS;
    let unknown: Vec<&str> = c
        .env
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|e| e.name.as_str())
        .filter(|k| k.starts_with("AO_") && !known.contains(*k))
        .filter(|k| !settings.iter().any(|s| s.name == *k && !s.secret))
        .collect();
    assert!(
        unknown.is_empty(),
        "AO_ variables in overlays/ha that are no flag of `agent-orchestrator serve` nor a \
         worker setting: {unknown:?}"
    );
}
