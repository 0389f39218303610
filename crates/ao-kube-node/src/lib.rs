//! A process node for tests: registers a Node with a real kube-apiserver, binds the pods of
//! its namespaces to itself and runs each pod's container command as a local process, as a
//! kubelet would (status, deadlines, graceful deletion, memory limits, the log endpoint).
//! Test infrastructure only; see the crate description.
//!
//! Layout: `register` keeps the Node and its Lease, `bind` is the scheduler, `pods`
//! watches the pods bound here and gives each one a task (`run`), which prepares images,
//! env (`envs`) and volumes (`volumes`), starts processes (`process`), watches their
//! memory (`memory`) and writes status (`status`). Container output goes to files
//! (`logs`) served over HTTPS by `logs_server`.
//!
//! What it does not do, on purpose (it is a test node, not a kubelet):
//! - Restart policies: containers are never restarted; `Always` and `OnFailure` are treated
//!   as `Never` (a terminated container ends the pod as Succeeded or Failed), so `previous`
//!   logs never exist (400).
//! - Images are directories (see [`NodeConfig::images`]); an image's ENTRYPOINT, for a
//!   container without `command`, is the file `<dir>/entrypoint`, one argument per line.
//! - Isolation is a private mount namespace, a user and `no_new_privs`: no PID or network
//!   namespace, no cgroups (memory is sampled from `/proc`, see `memory`), no seccomp or
//!   capability changes. An image directory under a volume's mount path is bound again at
//!   its own path (its parent directories then appear inside that volume).
//! - `initContainers` and `resourceFieldRef` are not supported: such a pod is refused loudly
//!   (`CreateContainerConfigError`). Probes are ignored (a running container is ready).
//!   No termination message file is mounted; `FallbackToLogsOnError` (the log's tail) works.
//! - Projected service-account tokens are requested once, never refreshed.
//!
//! `unsafe` appears once, in `process`, for `pre_exec`; the rest of the crate is safe code.
#![deny(unsafe_op_in_unsafe_fn)]

mod bind;
mod config;
mod container;
mod envs;
mod logs;
mod logs_server;
mod memory;
mod pods;
mod process;
mod register;
mod run;
mod security;
mod status;
mod volumes;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use config::{Mode, NodeConfig, NodeError};

/// What every task of one node shares.
pub(crate) struct Shared {
    pub name: String,
    pub client: kube::Client,
    pub mode: Mode,
    pub images: BTreeMap<String, PathBuf>,
    pub work_dir: PathBuf,
    pub logs: logs::Registry,
    /// Cancelled by [`NodeHandle::shutdown`] (or drop): every task stops, processes are killed.
    pub cancel: CancellationToken,
    /// Bounds the node's concurrent status writes, so a burst of thousands of pods (no-op
    /// mode) does not open thousands of connections to the API server at once.
    pub writes: tokio::sync::Semaphore,
}

/// Status writes in flight at once, node-wide.
const CONCURRENT_WRITES: usize = 64;

/// A running node. Dropping it without [`NodeHandle::shutdown`] stops its tasks too (their
/// processes are killed), but leaves the Node object behind.
pub struct NodeHandle {
    shared: Arc<Shared>,
    log_port: u16,
    tasks: JoinSet<()>,
}

/// Registers the Node, starts its Lease, binder, pod watchers and log endpoint.
pub async fn start(cfg: NodeConfig) -> Result<NodeHandle, NodeError> {
    let NodeConfig {
        name,
        client,
        namespaces,
        mode,
        images,
        work_dir,
        tls_cert,
        tls_key,
        serve_logs,
    } = cfg;
    std::fs::create_dir_all(&work_dir).map_err(NodeError::io(format!(
        "creating work dir {}",
        work_dir.display()
    )))?;
    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(NodeError::io("binding the log endpoint on 127.0.0.1"))?;
    let log_port = listener
        .local_addr()
        .map_err(NodeError::io("log endpoint address"))?
        .port();
    let shared = Arc::new(Shared {
        name: name.clone(),
        client: client.clone(),
        mode,
        images,
        work_dir,
        logs: logs::Registry::default(),
        cancel: cancel.clone(),
        writes: tokio::sync::Semaphore::new(CONCURRENT_WRITES),
    });
    if serve_logs {
        let server = logs_server::LogServer::new(listener, &tls_cert, &tls_key, shared.clone())?;
        tasks.spawn(server.run());
    } else {
        // Advertised but closed: the API server's proxy gets "connection refused".
        drop(listener);
    }
    let node = register::register(&client, &name, log_port).await?;
    register::renew_lease(&client, &node)
        .await
        .map_err(NodeError::api(format!("creating the Lease of Node {name}")))?;
    tasks.spawn(register::keep_lease(shared.clone(), node));
    for ns in namespaces {
        tasks.spawn(bind::run(shared.clone(), ns.clone()));
        tasks.spawn(pods::run(shared.clone(), ns));
    }
    tracing::info!(node = %name, log_port, "node started");
    Ok(NodeHandle {
        shared,
        log_port,
        tasks,
    })
}

impl NodeHandle {
    /// The Node's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The port of the log endpoint the Node advertises (`daemonEndpoints.kubeletEndpoint`).
    pub fn log_port(&self) -> u16 {
        self.log_port
    }

    /// Stops the watches, kills the node's processes, and deletes the Node and its Lease.
    pub async fn shutdown(mut self) {
        self.shared.cancel.cancel();
        let drained = tokio::time::timeout(Duration::from_secs(10), async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(node = %self.shared.name, "node tasks did not stop within 10 s");
            self.tasks.abort_all();
        }
        register::unregister(&self.shared.client, &self.shared.name).await;
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}
