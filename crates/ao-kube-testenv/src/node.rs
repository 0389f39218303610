//! Process nodes on the test environment: [`TestEnv::start_node`] hands `ao_kube_node::start`
//! the environment's TLS files, a client whose audit user is `ao-kube-node`, a work folder in
//! the environment's folder and the images made with [`TestEnv::image`].

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

pub use ao_kube_node::{Mode, NodeHandle};

use crate::TestEnv;
use crate::client::{client_from, random_name};

/// What [`TestEnv::start_node`] makes a node of.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// The namespaces whose pods the node binds and runs.
    pub namespaces: Vec<String>,
    /// Process (the default) or Noop (pods go Running without a process, for scale).
    pub mode: Mode,
    /// Images in addition to every image made by [`TestEnv::image`] in this process.
    pub images: BTreeMap<String, PathBuf>,
    /// Whether the log endpoint listens (default true). False: the API server's `pods/log`
    /// proxy cannot reach the node.
    pub serve_logs: bool,
    /// The Node's name; default `node-<random6>`.
    pub name: Option<String>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            namespaces: Vec::new(),
            mode: Mode::Process,
            images: BTreeMap::new(),
            serve_logs: true,
            name: None,
        }
    }
}

impl NodeOptions {
    /// A process node for `namespaces`, serving logs, with this process's images.
    pub fn new<S: Into<String>>(namespaces: impl IntoIterator<Item = S>) -> Self {
        NodeOptions {
            namespaces: namespaces.into_iter().map(Into::into).collect(),
            ..NodeOptions::default()
        }
    }
}

impl TestEnv {
    /// Starts a process node for `opts.namespaces`. Its work folder is
    /// `<dir>/nodes/<name>`; it authenticates as `ao-kube-node` (`system:masters`) and
    /// serves its log endpoint with `pki/node.crt`. Panics when it does not start.
    pub async fn start_node(&self, opts: NodeOptions) -> NodeHandle {
        let name = opts.name.unwrap_or_else(|| random_name("node"));
        let nodes = self.dir.join("nodes");
        let work_dir = nodes.join(&name);
        let make = || -> std::io::Result<()> {
            std::fs::create_dir_all(&work_dir)?;
            for d in [&nodes, &work_dir] {
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
            }
            Ok(())
        };
        make().unwrap_or_else(|e| {
            panic!(
                "ao-kube-testenv: cannot make node folder {}: {e}",
                work_dir.display()
            )
        });
        let mut images = self.images();
        images.extend(opts.images);
        let config = ao_kube_node::NodeConfig {
            name: name.clone(),
            client: client_from(&self.dir.join("node.kubeconfig")).await,
            namespaces: opts.namespaces,
            mode: opts.mode,
            images,
            work_dir,
            tls_cert: self.pki.join("node.crt"),
            tls_key: self.pki.join("node.key"),
            serve_logs: opts.serve_logs,
        };
        ao_kube_node::start(config)
            .await
            .unwrap_or_else(|e| panic!("ao-kube-testenv: process node {name} did not start: {e:?}"))
    }
}
