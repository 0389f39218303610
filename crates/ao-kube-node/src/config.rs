//! The node's configuration and its error type: what a test (or the `ao-kube-node` binary)
//! hands to [`crate::start`], and what can go wrong while starting.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// How the node runs the pods bound to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Each container's command runs as a local process (isolated mounts, its user, its env).
    #[default]
    Process,
    /// Pods go Running without a process and stay so until deleted; deletion completes at once.
    /// For scale tests with thousands of pods.
    Noop,
}

/// Everything a node needs. The shared interface of the test environment (see the crate doc).
#[derive(Clone)]
pub struct NodeConfig {
    /// The Node's name; pods are bound to it and its Lease in `kube-node-lease` bears it.
    pub name: String,
    /// The client the node talks to the API server with (its identity in the audit log).
    pub client: kube::Client,
    /// The namespaces whose unbound pods this node binds (it is their scheduler) and runs.
    pub namespaces: Vec<String>,
    /// Process or no-op.
    pub mode: Mode,
    /// Image ref -> directory. The container's PATH starts with `<dir>/bin`. An image not
    /// listed fails to pull (`ErrImagePull`, then `ImagePullBackOff`).
    pub images: BTreeMap<String, PathBuf>,
    /// Where the node keeps per-pod volumes and container logs.
    pub work_dir: PathBuf,
    /// PEM serving certificate of the log endpoint (for IP 127.0.0.1).
    pub tls_cert: PathBuf,
    /// PEM private key of `tls_cert`.
    pub tls_key: PathBuf,
    /// Whether the log endpoint accepts connections. When false the Node still advertises a
    /// port, but nothing listens on it, so the API server's `pods/log` proxy fails.
    pub serve_logs: bool,
}

/// Why [`crate::start`] failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// An API request the node needs at start was refused or failed.
    #[error("{what}")]
    Api {
        /// What the node was doing.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A local file or socket operation failed.
    #[error("{what}")]
    Io {
        /// What the node was doing.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The log endpoint's certificate or key could not be used.
    #[error("TLS setup of the log endpoint: {what}")]
    Tls {
        /// What was wrong.
        what: String,
        /// rustls' error, when it gave one.
        #[source]
        source: Option<rustls::Error>,
    },
}

impl NodeError {
    pub(crate) fn api(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let what = what.into();
        move |source| NodeError::Api { what, source }
    }

    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| NodeError::Io { what, source }
    }
}
