//! One test's slice of the real cluster, laid out the way `deploy/` lays out production: a
//! workers namespace (the `claude-worker` ServiceAccount, the worker Secret, the pods) and a
//! control-plane namespace holding the orchestrator's own `agent-orchestrator`
//! ServiceAccount, bound to the Role of `deploy/rbac.yaml` rendered into the workers
//! namespace. The orchestrator gets a TokenRequest kubeconfig for that ServiceAccount, never
//! admin. Each test also gets its own process node, so tests run in parallel.
//!
//! Other real-API-server test folders may copy this module (with `orchestrator.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use ao_kube_testenv::{NodeHandle, NodeOptions, env};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Api;
use kube::api::PostParams;
use serde::de::DeserializeOwned;

/// The orchestrator's ServiceAccount (deploy/serviceaccounts.yaml).
pub const ORCHESTRATOR_SA: &str = "agent-orchestrator";
/// The worker pods' ServiceAccount (deploy/serviceaccounts.yaml).
pub const WORKER_SA: &str = "claude-worker";
/// The Secret worker pods read `ANTHROPIC_API_KEY` and `GITHUB_TOKEN` from (`--k8s-secret-name`).
pub const WORKER_SECRET: &str = "claude-worker-secrets";

/// How a test wants its slice of the cluster.
pub struct Setup<'a> {
    /// Namespace prefix (the env appends a random suffix).
    pub prefix: &'a str,
    /// Images the node can "pull": image ref -> directory (see `TestEnv::image`).
    pub images: BTreeMap<String, PathBuf>,
    /// The worker Secret's values; `None`: no Secret (pods hit `CreateContainerConfigError`).
    pub secret: Option<Vec<(&'a str, String)>>,
    /// Whether the node serves its log endpoint (false: `pods/log` fails at the API server).
    pub serve_logs: bool,
}

/// A test's namespaces, RBAC, credentials and node.
pub struct Cluster {
    /// Where the worker pods run (`--k8s-namespace`).
    pub ns: String,
    /// Where the orchestrator's ServiceAccount lives.
    pub control_ns: String,
    /// A kubeconfig with a TokenRequest token of `control_ns/agent-orchestrator`.
    pub kubeconfig: PathBuf,
    pub admin: kube::Client,
    pub node: Option<NodeHandle>,
    /// Holds the kubeconfig.
    pub dir: tempfile::TempDir,
}

impl Cluster {
    pub async fn new(setup: Setup<'_>) -> Cluster {
        let env = env();
        let admin = env.admin().await;
        let ns = env.namespace(&format!("{}-agents", setup.prefix)).await;
        let control_ns = env.namespace(&format!("{}-cp", setup.prefix)).await;
        create_service_account(&admin, &control_ns, ORCHESTRATOR_SA, None).await;
        create_service_account(&admin, &ns, WORKER_SA, Some(false)).await;
        for role in ao_kube_testenv::deploy_rbac::<Role>(&ns, &control_ns) {
            create(&Api::namespaced(admin.clone(), &ns), &role).await;
        }
        for binding in ao_kube_testenv::deploy_rbac::<RoleBinding>(&ns, &control_ns) {
            create(&Api::namespaced(admin.clone(), &ns), &binding).await;
        }
        if let Some(values) = &setup.secret {
            let secret = Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some(WORKER_SECRET.into()),
                    ..Default::default()
                },
                data: Some(
                    values
                        .iter()
                        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                        .collect(),
                ),
                ..Default::default()
            };
            create(&Api::namespaced(admin.clone(), &ns), &secret).await;
        }
        let dir = tempfile::Builder::new()
            .prefix("ao-kube-product-")
            .tempdir()
            .expect("tempdir");
        let kubeconfig = env
            .token_kubeconfig(&control_ns, ORCHESTRATOR_SA, &dir.path().join("kubeconfig"))
            .await;
        let node = env
            .start_node(NodeOptions {
                namespaces: vec![ns.clone()],
                images: setup.images,
                serve_logs: setup.serve_logs,
                ..NodeOptions::default()
            })
            .await;
        Cluster {
            ns,
            control_ns,
            kubeconfig,
            admin,
            node: Some(node),
            dir,
        }
    }

    /// The audit log's user name of the orchestrator.
    pub fn orchestrator_user(&self) -> String {
        format!(
            "system:serviceaccount:{}:{ORCHESTRATOR_SA}",
            self.control_ns
        )
    }

    /// The admin's view of the workers namespace's pods.
    pub fn pods(&self) -> Api<k8s_openapi::api::core::v1::Pod> {
        Api::namespaced(self.admin.clone(), &self.ns)
    }

    /// Requests of the orchestrator in the audit log on `resource[/subresource]` named `name`
    /// with `verb`.
    pub fn orchestrator_requests(
        &self,
        verb: &str,
        resource: &str,
        subresource: Option<&str>,
        name: Option<&str>,
    ) -> Vec<ao_kube_testenv::AuditEvent> {
        let user = self.orchestrator_user();
        env()
            .audit()
            .into_iter()
            .filter(|e| {
                e.user == user
                    && e.verb == verb
                    && e.namespace.as_deref() == Some(self.ns.as_str())
                    && e.resource.as_deref() == Some(resource)
                    && e.subresource.as_deref() == subresource
                    && (name.is_none() || e.name.as_deref() == name)
            })
            .collect()
    }

    /// Stop the node (its processes go with it) and delete the test's namespaces (the
    /// namespace controller removes what is left in them).
    pub async fn shutdown(mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown().await;
        }
        let namespaces: Api<Namespace> = Api::all(self.admin.clone());
        for ns in [&self.ns, &self.control_ns] {
            if let Err(e) = namespaces.delete(ns, &Default::default()).await {
                eprintln!("deleting namespace {ns}: {e}");
            }
        }
    }
}

async fn create_service_account(
    admin: &kube::Client,
    ns: &str,
    name: &str,
    automount: Option<bool>,
) {
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

async fn create<K>(api: &Api<K>, obj: &K)
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    api.create(&PostParams::default(), obj)
        .await
        .unwrap_or_else(|e| panic!("creating {obj:?} as admin: {e}"));
}
