//! Temporary stand-in for `ao_kube_testenv::env()` until h/env lands: attaches to the
//! environment whose `run/env` is in `$AO_TESTENV_DIR`. Same names as the shared interface.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::Api;
use kube::api::PostParams;

pub struct TestEnv {
    pub server: String,
    pub pki: PathBuf,
    admin_kubeconfig: PathBuf,
}

pub fn env() -> &'static TestEnv {
    static ENV: std::sync::OnceLock<TestEnv> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let dir =
            PathBuf::from(std::env::var("AO_TESTENV_DIR").expect("AO_TESTENV_DIR")).join("run");
        let text =
            std::fs::read_to_string(dir.join("env")).expect("run/env: start the environment");
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .expect(k)
                .to_owned()
        };
        TestEnv {
            server: get("AO_KUBE_SERVER"),
            pki: get("AO_KUBE_PKI").into(),
            admin_kubeconfig: get("AO_KUBE_ADMIN_KUBECONFIG").into(),
        }
    })
}

impl TestEnv {
    pub async fn admin(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.admin_kubeconfig).unwrap();
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(cfg).unwrap()
    }

    pub async fn namespace(&self, prefix: &str) -> String {
        let name = format!("{prefix}-{:06x}", rand_u32() & 0xffffff);
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}}})).unwrap();
        let client = self.admin().await;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
        let sas: Api<ServiceAccount> = Api::namespaced(client, &name);
        for _ in 0..300 {
            if sas.get_opt("default").await.unwrap().is_some() {
                return name;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("no default ServiceAccount in {name}");
    }
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    t ^ std::process::id().rotate_left(16)
}
