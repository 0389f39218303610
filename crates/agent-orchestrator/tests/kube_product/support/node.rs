//! The test's own process node (`ao-kube-node`) for its workers namespace, with the env's TLS
//! files and the `ao-kube-node` client certificate (its identity in the audit log), knowing
//! only the images the test lists: any other image fails to pull.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ao_kube_node::{Mode, NodeConfig, NodeHandle};
use ao_kube_testenv::TestEnv;

/// Start a node for `ns`; it keeps its volumes and logs in `work_dir`.
pub async fn start_node(
    env: &TestEnv,
    ns: &str,
    images: BTreeMap<String, PathBuf>,
    serve_logs: bool,
    work_dir: PathBuf,
) -> NodeHandle {
    let cfg = NodeConfig {
        name: format!("node-{ns}"),
        client: node_client(env).await,
        namespaces: vec![ns.to_owned()],
        mode: Mode::Process,
        images,
        work_dir,
        tls_cert: env.pki.join("node.crt"),
        tls_key: env.pki.join("node.key"),
        serve_logs,
    };
    ao_kube_node::start(cfg)
        .await
        .unwrap_or_else(|e| panic!("starting the process node for {ns}: {e}"))
}

async fn node_client(env: &TestEnv) -> kube::Client {
    let pki = &env.pki;
    let kubeconfig = serde_json::json!({
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
