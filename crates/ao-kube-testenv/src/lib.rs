//! Starts or attaches to the real Kubernetes test environment (`scripts/kube-testenv.sh`) and
//! hands tests what they need from it: an admin client, fresh Pod-Security-restricted
//! namespaces, ServiceAccount token kubeconfigs, the audit log, "images" for the process node
//! and process nodes themselves. Test infrastructure only.
//!
//! One environment (etcd, kube-apiserver, kube-controller-manager) serves every test binary:
//! [`env`] starts it once (the script takes a file lock, so parallel test binaries share it)
//! and later processes attach to it. Tests isolate themselves through their own namespaces.
//! When the environment can't start, [`env`] panics with the script's output: tests never skip.

mod apiserver;
mod audit;
mod client;
mod deploy;
mod image;
mod node;
mod start;

use std::path::PathBuf;
use std::sync::OnceLock;

pub use audit::{AuditEvent, read_log};
pub use client::client_from;
pub use deploy::deploy_rbac;
pub use node::{Mode, NodeHandle, NodeOptions};

/// A running test environment. Every path is absolute.
#[derive(Debug, Clone)]
pub struct TestEnv {
    /// The running environment's folder (`$AO_TESTENV_DIR/run`): logs, kubeconfigs, data.
    pub dir: PathBuf,
    /// The API server, `https://127.0.0.1:PORT`.
    pub server: String,
    /// A kubeconfig of the `admin` user (group `system:masters`).
    pub admin_kubeconfig: PathBuf,
    /// kube-apiserver's audit log (JSON lines, level Metadata, stages after RequestReceived).
    pub audit_log: PathBuf,
    /// etcd's client URL, `http://127.0.0.1:PORT` (for compaction in watch tests).
    pub etcd: String,
    /// The PKI folder: `ca.crt`; `node.crt`/`node.key` (serving certificate for 127.0.0.1);
    /// `node-client.crt`/`node-client.key` (user `ao-kube-node`, group `system:masters`).
    pub pki: PathBuf,
}

/// The environment of this process: attaches to the running one or starts it (once per
/// process, whatever the runtime of the caller). Panics with the script's output when it
/// can't start.
pub fn env() -> &'static TestEnv {
    static ENV: OnceLock<TestEnv> = OnceLock::new();
    ENV.get_or_init(start::start_or_attach)
}
