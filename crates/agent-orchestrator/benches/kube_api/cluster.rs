//! One measurement's slice of the real cluster, laid out as `deploy/` lays out production
//! (adapted from `tests/kube_product/support/cluster.rs`): a workers namespace with the
//! `claude-worker` ServiceAccount and Secret, a control-plane namespace with the
//! `agent-orchestrator` ServiceAccount bound to the Role of `deploy/rbac.yaml`, a
//! TokenRequest kubeconfig for it (never admin) and a node of the wanted mode.
//!
//! Each measurement gets its own namespaces, so the audit log's `namespace` field tells
//! whose requests are whose.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ao_kube_node::{Mode, NodeHandle};
use ao_kube_testenv::{NodeOptions, env};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Api;
use kube::api::PostParams;
use serde::de::DeserializeOwned;

pub const ORCHESTRATOR_SA: &str = "agent-orchestrator";
pub const WORKER_SA: &str = "claude-worker";
pub const WORKER_SECRET: &str = "claude-worker-secrets";

/// A measurement's namespaces, credentials and node.
pub struct Cluster {
    /// Where the worker pods run (`--k8s-namespace`).
    pub ns: String,
    pub control_ns: String,
    /// A TokenRequest kubeconfig of `control_ns/agent-orchestrator`.
    pub kubeconfig: PathBuf,
    pub admin: kube::Client,
    /// The audit user of `admin` (the bench observes as admin; its requests are not counted).
    pub admin_user: String,
    node: Option<NodeHandle>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// A slice whose node runs pods in `mode`, with the given images.
    pub async fn new(prefix: &str, mode: Mode, images: BTreeMap<String, PathBuf>) -> Cluster {
        let env = env();
        let admin = env.admin().await;
        let from = super::audit::mark();
        let ns = env.namespace(&format!("{prefix}-agents")).await;
        let admin_user = super::audit::admin_user(&ns, from);
        let control_ns = env.namespace(&format!("{prefix}-cp")).await;
        create_sa(&admin, &control_ns, ORCHESTRATOR_SA, None).await;
        create_sa(&admin, &ns, WORKER_SA, Some(false)).await;
        for role in ao_kube_testenv::deploy_rbac::<Role>(&ns, &control_ns) {
            create(&Api::namespaced(admin.clone(), &ns), &role).await;
        }
        for binding in ao_kube_testenv::deploy_rbac::<RoleBinding>(&ns, &control_ns) {
            create(&Api::namespaced(admin.clone(), &ns), &binding).await;
        }
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(WORKER_SECRET.into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                "ANTHROPIC_API_KEY".to_owned(),
                ByteString(b"sk-unused-by-the-bench".to_vec()),
            )])),
            ..Default::default()
        };
        create(&Api::namespaced(admin.clone(), &ns), &secret).await;
        let dir = tempfile::Builder::new()
            .prefix("ao-kube-bench-")
            .tempdir()
            .expect("tempdir");
        let kubeconfig = env
            .token_kubeconfig(&control_ns, ORCHESTRATOR_SA, &dir.path().join("kubeconfig"))
            .await;
        let node = env
            .start_node(NodeOptions {
                namespaces: vec![ns.clone()],
                images,
                serve_logs: true,
                mode,
                ..Default::default()
            })
            .await;
        Cluster {
            ns,
            control_ns,
            kubeconfig,
            admin,
            admin_user,
            node: Some(node),
            _dir: dir,
        }
    }

    /// The audit log's user name of the orchestrator (and of the bare client, which uses the
    /// same credential).
    pub fn orchestrator_user(&self) -> String {
        format!(
            "system:serviceaccount:{}:{ORCHESTRATOR_SA}",
            self.control_ns
        )
    }

    /// A client authenticated as the orchestrator's ServiceAccount.
    pub async fn sa_client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("read kubeconfig");
        let opts = kube::config::KubeConfigOptions::default();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &opts)
            .await
            .expect("kubeconfig");
        kube::Client::try_from(cfg).expect("client")
    }

    /// Remove the pods at once (grace 0: a no-op node never ends them, and a node that is
    /// gone never confirms a graceful delete, which would leave them Terminating on the shared
    /// API server), stop the node and delete both namespaces (not waited for).
    pub async fn teardown(mut self) {
        self.force_delete_pods().await;
        if let Some(node) = self.node.take() {
            node.shutdown().await;
        }
        let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.admin.clone());
        for ns in [&self.ns, &self.control_ns] {
            let _ = nss.delete(ns, &Default::default()).await;
        }
    }
}

impl Cluster {
    async fn force_delete_pods(&self) {
        use futures::StreamExt;
        let api: Api<k8s_openapi::api::core::v1::Pod> =
            Api::namespaced(self.admin.clone(), &self.ns);
        let names: Vec<String> = match api.list_metadata(&Default::default()).await {
            Ok(l) => l
                .items
                .into_iter()
                .filter_map(|p| p.metadata.name)
                .collect(),
            Err(e) => return eprintln!("kube_api bench: listing the pods of {}: {e}", self.ns),
        };
        let dp = kube::api::DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        futures::stream::iter(names)
            .for_each_concurrent(32, |name| {
                let (api, dp) = (api.clone(), dp.clone());
                async move {
                    match api.delete(&name, &dp).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(s)) if s.code == 404 => {}
                        Err(e) => eprintln!("kube_api bench: deleting pod {name}: {e}"),
                    }
                }
            })
            .await;
    }
}

async fn create_sa(admin: &kube::Client, ns: &str, name: &str, automount: Option<bool>) {
    let sa = ServiceAccount {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        automount_service_account_token: automount,
        ..Default::default()
    };
    create(&Api::namespaced(admin.clone(), ns), &sa).await;
}

pub async fn create<K>(api: &Api<K>, obj: &K)
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.create(&PostParams::default(), obj)
        .await
        .unwrap_or_else(|e| panic!("creating {obj:?} as admin: {e}"));
}
