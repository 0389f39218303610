//! The orchestrator Deployment: hardened, probed, and configured only with real `serve` flags.

use super::*;

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
pub(crate) fn serve_env_names() -> BTreeSet<String> {
    let root = repo_root();
    let mut names = BTreeSet::new();
    for file in [
        "crates/agent-orchestrator/src/config/mod.rs",
        "crates/agent-orchestrator/src/http_server.rs",
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
