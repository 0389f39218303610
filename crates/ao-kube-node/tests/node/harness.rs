//! What the node's tests share: the real API server of the test environment, a fresh
//! restricted namespace and a node of its own per test, pod specs that Pod Security
//! "restricted" admits, and waits on conditions (watches with a bound, never fixed sleeps).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ao_kube_node::{Mode, NodeConfig, NodeHandle};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use kube::runtime::wait::{Condition, await_condition};
use serde_json::{Value, json};

/// The image every test pod uses: its directory's `bin/` is empty, so PATH falls through to
/// the host's `/usr/bin` and `/bin` (sh, python3, id).
pub const IMAGE: &str = "ao-kube-node-test/shell:1";

/// One test's namespace and node.
pub struct Setup {
    pub ns: String,
    pub pods: Api<Pod>,
    pub admin: kube::Client,
    pub node: Option<NodeHandle>,
    _work: tempfile::TempDir,
    /// The directory of [`IMAGE`] (its `bin/` is empty unless a test puts a program there).
    pub image: tempfile::TempDir,
}

impl Setup {
    /// A fresh namespace and a process node for it.
    pub async fn new(prefix: &str) -> Setup {
        Setup::with(prefix, Mode::Process, true).await
    }

    pub async fn with(prefix: &str, mode: Mode, serve_logs: bool) -> Setup {
        let env = ao_kube_testenv::env();
        let admin = env.admin().await;
        let ns = env.namespace(prefix).await;
        let image = tempfile::tempdir().expect("image dir");
        std::fs::create_dir_all(image.path().join("bin")).expect("image bin dir");
        let work = tempfile::tempdir().expect("work dir");
        let cfg = NodeConfig {
            name: format!("node-{ns}"),
            client: node_client(env).await,
            namespaces: vec![ns.clone()],
            mode,
            images: BTreeMap::from([(IMAGE.to_owned(), image.path().to_path_buf())]),
            work_dir: work.path().to_path_buf(),
            tls_cert: env.pki.join("node.crt"),
            tls_key: env.pki.join("node.key"),
            serve_logs,
        };
        let node = ao_kube_node::start(cfg).await.expect("starting the node");
        Setup {
            pods: Api::namespaced(admin.clone(), &ns),
            ns,
            admin,
            node: Some(node),
            _work: work,
            image,
        }
    }

    pub async fn create(&self, pod: Value) -> Pod {
        let pod: Pod = serde_json::from_value(pod).expect("pod json");
        self.pods
            .create(&PostParams::default(), &pod)
            .await
            .expect("creating the pod")
    }

    /// Waits (bounded) until the pod meets `cond`; panics with the pod's last state if not.
    pub async fn wait(&self, name: &str, secs: u64, what: &str, cond: impl Condition<Pod>) -> Pod {
        let waited = tokio::time::timeout(
            Duration::from_secs(secs),
            await_condition(self.pods.clone(), name, cond),
        )
        .await;
        match waited {
            Ok(Ok(Some(pod))) => pod,
            Ok(Ok(None)) => panic!("pod {name} is gone while waiting until {what}"),
            Ok(Err(e)) => panic!("watching pod {name}: {e}"),
            Err(_) => {
                let now = self.pods.get_opt(name).await.ok().flatten();
                panic!(
                    "pod {name}: not {what} after {secs} s; status: {:#?}",
                    now.and_then(|p| p.status)
                )
            }
        }
    }

    /// Waits until the pod is gone from the API.
    pub async fn wait_gone(&self, name: &str, uid: &str, secs: u64) {
        let gone = kube::runtime::wait::conditions::is_deleted(uid);
        let waited = tokio::time::timeout(
            Duration::from_secs(secs),
            await_condition(self.pods.clone(), name, gone),
        )
        .await;
        assert!(
            matches!(waited, Ok(Ok(_))),
            "pod {name} still exists after {secs} s: {:?}",
            self.pods.get_opt(name).await
        );
    }

    pub async fn shutdown(mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown().await;
        }
    }
}

/// A client as the node's own identity (user `ao-kube-node`).
async fn node_client(env: &ao_kube_testenv::TestEnv) -> kube::Client {
    let pki: PathBuf = env.pki.clone();
    let kubeconfig = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "t", "cluster": {"server": env.server, "certificate-authority": pki.join("ca.crt")}}],
        "users": [{"name": "n", "user": {"client-certificate": pki.join("node-client.crt"), "client-key": pki.join("node-client.key")}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "n"}}],
        "current-context": "t",
    });
    let kc: kube::config::Kubeconfig = serde_json::from_value(kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("node kubeconfig");
    kube::Client::try_from(config).expect("node client")
}

/// A pod Pod Security "restricted" admits, running `script` with `sh -c` as uid 1000.
pub fn pod(name: &str, script: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 5,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "main", "image": IMAGE,
                "command": ["sh", "-c", script],
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
            }],
        },
    })
}

pub fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// The first container's state.
pub fn state(p: &Pod) -> k8s_openapi::api::core::v1::ContainerState {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.clone())
        .unwrap_or_default()
}

/// The pod reached Succeeded or Failed.
pub fn terminal() -> impl Condition<Pod> {
    |p: Option<&Pod>| p.is_some_and(|p| matches!(phase(p), "Succeeded" | "Failed"))
}

pub fn running() -> impl Condition<Pod> {
    |p: Option<&Pod>| p.is_some_and(|p| phase(p) == "Running")
}

/// The first container waits with `reason`.
pub fn waiting(reason: &'static str) -> impl Condition<Pod> {
    move |p: Option<&Pod>| {
        p.is_some_and(|p| {
            state(p)
                .waiting
                .is_some_and(|w| w.reason.as_deref() == Some(reason))
        })
    }
}
