//! `deploy/` on a real kube-apiserver (with etcd, RBAC, Pod Security admission and
//! kube-controller-manager, from `scripts/kube-testenv.sh`):
//!
//! - [`apply`]: `kubectl apply -k deploy/` works on a cluster without the Prometheus Operator;
//!   the ServiceMonitor component needs its CRD and applies once it exists.
//! - [`pss`]: under Pod Security "restricted", the worker pod the runtime builds is admitted
//!   and each weakened hardening field is refused; the orchestrator's own pod is admitted.
//! - [`rbac`]: the real `agent-orchestrator serve --runtime kubernetes`, authenticated as its
//!   ServiceAccount with the Role of `deploy/rbac.yaml`, runs a scenario without a single 403
//!   (sufficient), and without any one verb of that Role the scenario fails (minimal).
//!
//! This file holds what the modules share: paths, the manifests, kubectl and bounded waits.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ao_kube_testenv::env;
use serde::Deserialize;
use serde_json::Value;

mod apply;
mod orchestrator;
mod pss;
mod rbac;
mod scenario;

pub const BIN: &str = env!("CARGO_BIN_EXE_agent-orchestrator");

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

pub fn deploy_dir() -> PathBuf {
    repo().join("deploy")
}

/// Every YAML document of `deploy/<file>`, as JSON values.
pub fn manifests(file: &str) -> Vec<Value> {
    let path = deploy_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

/// The one document of `deploy/<file>` of this kind (and name, if given).
pub fn manifest(file: &str, kind: &str, name: Option<&str>) -> Value {
    let mut hits: Vec<Value> = manifests(file)
        .into_iter()
        .filter(|v| v["kind"] == kind && name.is_none_or(|n| v["metadata"]["name"] == n))
        .collect();
    assert_eq!(hits.len(), 1, "deploy/{file}: one {kind} {name:?}");
    hits.remove(0)
}

/// The fixed namespaces of `deploy/` (`agents`, `agents-control-plane`) are shared by every
/// test of this binary that applies `deploy/` itself: they run one at a time.
pub static FIXED_NAMESPACES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The result of one kubectl run.
pub struct Kubectl {
    pub ok: bool,
    pub out: String,
}

/// `kubectl --kubeconfig <admin> <args>`, with its own discovery cache (a CRD created a
/// moment ago must not be hidden by a cache of another run).
pub fn kubectl(cache: &Path, args: &[&str]) -> Kubectl {
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&env().admin_kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .output()
        .expect("kubectl is on PATH (kubectl 1.32 at /usr/bin/kubectl)");
    Kubectl {
        ok: out.status.success(),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Polls `check` until it returns `Some`, for at most `limit`; panics naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
