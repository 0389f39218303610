//! `kubectl apply -k deploy/` as a user runs it, in the fixed namespaces `agents` and
//! `agents-control-plane`: the base applies on a cluster without the Prometheus Operator
//! (and Pod Security admits what it deploys there, for real: the ReplicaSet controller's pod),
//! while the base plus the ServiceMonitor component fails without the CRD with
//! `no matches for kind "ServiceMonitor"` and applies once the CRD is installed.
//!
//! The two tests share the fixed namespaces and the cluster-wide CRD, so they hold
//! [`FIXED_NAMESPACES`]; each removes what it made (also when it fails), and cleans up
//! leftovers of an earlier run first.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;

use super::*;

const CRD: &str = "servicemonitors.monitoring.coreos.com";
const FIXED: [&str; 2] = ["agents", "agents-control-plane"];

/// A minimal ServiceMonitor CRD (as the Prometheus Operator would install, without its schema).
const CRD_YAML: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: servicemonitors.monitoring.coreos.com
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names:
    kind: ServiceMonitor
    listKind: ServiceMonitorList
    plural: servicemonitors
    singular: servicemonitor
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          x-kubernetes-preserve-unknown-fields: true
"#;

/// Deletes the fixed namespaces and the CRD, and waits until they are gone: on creation (for
/// leftovers of an earlier run) and on drop (also when the test panics).
struct Cleanup {
    cache: tempfile::TempDir,
}

impl Cleanup {
    fn new() -> Cleanup {
        let c = Cleanup {
            cache: tempfile::tempdir().unwrap(),
        };
        c.clean();
        c
    }

    fn kubectl(&self, args: &[&str]) -> Kubectl {
        kubectl(self.cache.path(), args)
    }

    fn clean(&self) {
        for args in [
            &["delete", "namespace", FIXED[0], FIXED[1]][..],
            &["delete", "crd", CRD][..],
        ] {
            let mut a = args.to_vec();
            a.extend(["--ignore-not-found", "--wait=true", "--timeout=180s"]);
            let r = self.kubectl(&a);
            assert!(r.ok, "kubectl {a:?}: {}", r.out);
        }
        for (kind, name) in [
            ("namespace", FIXED[0]),
            ("namespace", FIXED[1]),
            ("crd", CRD),
        ] {
            let r = self.kubectl(&["get", kind, name, "--ignore-not-found", "-o", "name"]);
            assert!(
                r.ok && r.out.trim().is_empty(),
                "{kind} {name} is still there: {}",
                r.out
            );
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.clean();
    }
}

/// An overlay next to `deploy/` (kustomize takes relative paths only, and refuses an overlay
/// inside the base it includes): the base plus `components/servicemonitor`, as the README says.
fn overlay_with_service_monitor(dir: &Path) -> PathBuf {
    let overlay = dir.join("with-servicemonitor");
    std::fs::create_dir_all(&overlay).unwrap();
    let up = "../".repeat(overlay.components().count() - 1);
    let deploy = format!(
        "{up}{}",
        deploy_dir().display().to_string().trim_start_matches('/')
    );
    std::fs::write(
        overlay.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - \
             {deploy}\ncomponents:\n  - {deploy}/components/servicemonitor\n"
        ),
    )
    .unwrap();
    overlay
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_k_deploy_works_on_a_cluster_without_the_prometheus_operator() {
    let _fixed = FIXED_NAMESPACES.lock().await;
    let c = Cleanup::new();
    let deploy = deploy_dir();
    let r = c.kubectl(&["apply", "-k", deploy.to_str().unwrap()]);
    assert!(r.ok, "kubectl apply -k deploy/ failed:\n{}", r.out);
    for created in [
        "namespace/agents",
        "namespace/agents-control-plane",
        "role.rbac.authorization.k8s.io/agent-orchestrator",
        "deployment.apps/agent-orchestrator",
        "networkpolicy.networking.k8s.io/claude-worker",
    ] {
        assert!(r.out.contains(created), "{created} not applied:\n{}", r.out);
    }
    assert!(!r.out.contains("servicemonitor"), "{}", r.out);

    // Pod Security in the namespaces just applied: the runtime's worker pod is admitted in
    // `agents`, a pod without the hardening fields is not; the orchestrator's pod is admitted in
    // `agents-control-plane`.
    let admin = env().admin().await;
    pss::dry_run(&admin, "agents", pss::worker_pod("agents"))
        .await
        .expect("the worker pod is admitted in agents");
    let got = pss::dry_run(&admin, "agents", pss::bare_pod()).await;
    assert!(
        matches!(&got, Err(m) if m.starts_with("403: ") && m.contains("violates PodSecurity")),
        "a pod without securityContext in agents: {got:?}"
    );
    pss::dry_run(&admin, "agents-control-plane", pss::orchestrator_pod())
        .await
        .expect("the orchestrator's Deployment pod is admitted in agents-control-plane");
    // And for real: the ReplicaSet controller creates the Deployment's pod (no node runs it).
    let pods: Api<Pod> = Api::namespaced(admin, "agents-control-plane");
    let lp = ListParams::default().labels("app.kubernetes.io/name=agent-orchestrator");
    let name = wait_for(
        "the Deployment's pod to be created (refused by Pod Security? see kubectl describe rs)",
        Duration::from_secs(60),
        || {
            let (pods, lp) = (pods.clone(), lp.clone());
            async move {
                let list = pods.list(&lp).await.ok()?;
                list.items.into_iter().next().and_then(|p| p.metadata.name)
            }
        },
    )
    .await;
    eprintln!("the ReplicaSet controller created pod {name} in agents-control-plane");
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servicemonitor_component_needs_its_crd_and_applies_once_it_exists() {
    let _fixed = FIXED_NAMESPACES.lock().await;
    let c = Cleanup::new();
    let dir = tempfile::tempdir().unwrap();
    let overlay = overlay_with_service_monitor(dir.path());
    let overlay = overlay.to_str().unwrap();

    let r = c.kubectl(&["apply", "-k", overlay]);
    assert!(
        !r.ok,
        "applied a ServiceMonitor without its CRD?\n{}",
        r.out
    );
    assert!(
        r.out.contains(r#"no matches for kind "ServiceMonitor""#),
        "expected `no matches for kind \"ServiceMonitor\"`:\n{}",
        r.out
    );

    let crd = dir.path().join("crd.yaml");
    std::fs::write(&crd, CRD_YAML).unwrap();
    let r = c.kubectl(&["apply", "-f", crd.to_str().unwrap()]);
    assert!(r.ok, "installing the CRD: {}", r.out);
    let r = c.kubectl(&[
        "wait",
        "--for=condition=Established",
        &format!("crd/{CRD}"),
        "--timeout=60s",
    ]);
    assert!(r.ok, "the CRD is not established: {}", r.out);

    let r = c.kubectl(&["apply", "-k", overlay]);
    assert!(
        r.ok,
        "kubectl apply -k (base + servicemonitor component):\n{}",
        r.out
    );
    assert!(
        r.out
            .contains("servicemonitor.monitoring.coreos.com/agent-orchestrator"),
        "{}",
        r.out
    );
    let r = c.kubectl(&[
        "-n",
        "agents-control-plane",
        "get",
        "servicemonitor",
        "agent-orchestrator",
        "-o",
        "jsonpath={.spec.endpoints[0].path}",
    ]);
    assert!(r.ok && r.out == "/metrics", "{}", r.out);
    drop(c);
}
