//! The NetworkPolicy isolates the worker pods `build_pod` creates; the Service and
//! ServiceMonitor reach the orchestrator.

use super::*;

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
