//! A small Kubernetes API simulator, for tests and benchmarks only (never a dependency of the
//! product). It speaks the real REST + JSON of the calls the Kubernetes runtime makes (pods:
//! create/get/list/watch/delete, `pods/log`, `pods/status`; secrets: create/delete), with
//! Kubernetes' own object types from k8s-openapi, so a real `kube::Client` (or `kubectl`)
//! talks to it unchanged.
//!
//! Behind the API, a simulated kubelet moves pods Pending → Running → Succeeded/Failed
//! according to a per-pod [`Behaviour`] (or runs the container command as a local process),
//! and [`Faults`] inject latency, 5xx/429 answers, cut watches and `410 Gone`.
//!
//! Use it in-process with [`Sim::client`], or over TCP with [`Sim::serve_tcp`] and
//! [`write_kubeconfig`].

mod api;
mod faults;
mod kubelet;
mod logs;
mod objects;
mod process;
mod selector;
mod state;
mod status;
mod watch;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};

pub use faults::{Access, Faults, Recorded};
pub use kubelet::{Behaviour, Step};
pub use state::ChangeKind;

/// Simulator settings.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Pod changes kept for watch resumption; older resumes get `410 Gone`.
    pub history_limit: usize,
    /// Buffer of pod changes per watch; a watch that falls further behind gets `410 Gone`.
    pub broadcast_capacity: usize,
    /// Time from scheduling to the container running.
    pub start_delay: Duration,
    /// How often the kubelet retries a container whose configuration failed to build (a
    /// referenced Secret or key is missing).
    pub config_retry: Duration,
    /// How long one second of `activeDeadlineSeconds` lasts (shrink it in tests).
    pub deadline_unit: Duration,
    /// Interval of BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// What pods without a behaviour of their own do.
    pub default_behaviour: Behaviour,
    /// Maps an image name (or a command's program) to a local program, for [`Behaviour::Process`].
    pub programs: HashMap<String, PathBuf>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            history_limit: 10_000,
            broadcast_capacity: 200_000,
            start_delay: Duration::from_millis(20),
            config_retry: Duration::from_millis(50),
            deadline_unit: Duration::from_secs(1),
            bookmark_interval: Duration::from_secs(2),
            default_behaviour: Behaviour::exit(0, Duration::from_millis(50)),
            programs: HashMap::new(),
        }
    }
}

pub(crate) struct Inner {
    pub cfg: SimConfig,
    pub state: Mutex<state::State>,
    pub faults: Mutex<Faults>,
    pub requests: Mutex<Vec<Recorded>>,
    /// Bumped to cut every open watch stream.
    pub cut: tokio::sync::watch::Sender<u64>,
    /// Bumped on every request and every pod change, for [`Sim::until`].
    pub activity: tokio::sync::watch::Sender<u64>,
}

/// A handle on one simulated API server. Cheap to clone.
#[derive(Clone)]
pub struct Sim {
    pub(crate) inner: Arc<Inner>,
}

impl Sim {
    pub fn new(cfg: SimConfig) -> Self {
        let state = state::State::new(cfg.history_limit, cfg.broadcast_capacity);
        Sim {
            inner: Arc::new(Inner {
                cfg,
                state: Mutex::new(state),
                faults: Mutex::new(Faults::default()),
                requests: Mutex::new(Vec::new()),
                cut: tokio::sync::watch::channel(0).0,
                activity: tokio::sync::watch::channel(0).0,
            }),
        }
    }

    /// A `kube::Client` whose requests go straight to this simulator, in-process.
    pub fn client(&self, default_namespace: &str) -> kube::Client {
        kube::Client::new(faults::SimService::new(self.clone()), default_namespace)
    }

    /// The axum router serving the API.
    pub fn router(&self) -> axum::Router {
        api::router(self.clone())
    }

    /// Serve on 127.0.0.1 with an OS-chosen port; returns the bound address.
    pub async fn serve_tcp(&self) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let router = self.router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(addr)
    }

    /// Set what the pod of this name will do (before or after it is created).
    pub fn set_behaviour(&self, pod_name: &str, b: Behaviour) {
        self.lock().behaviours.insert(pod_name.to_string(), b);
    }

    /// The fault settings; change them at any time.
    pub fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.inner.faults.lock().expect("faults lock")
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().expect("requests lock").clone()
    }

    /// Wait until `cond` holds, checking it again after every request and pod change (no
    /// polling, no sleeps). Bound it with `tokio::time::timeout`.
    pub async fn until(&self, mut cond: impl FnMut(&Sim) -> bool) {
        let mut activity = self.inner.activity.subscribe();
        let mut pods = self.lock().events.subscribe();
        loop {
            activity.borrow_and_update();
            if cond(self) {
                return;
            }
            tokio::select! {
                _ = activity.changed() => {}
                r = pods.recv() => {
                    if matches!(r, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                        return;
                    }
                }
            }
        }
    }

    pub(crate) fn touch(&self) {
        self.inner.activity.send_modify(|n| *n += 1);
    }

    /// The RBAC attributes (verb, resource, namespace) of every resource request so far.
    pub fn accesses(&self) -> Vec<Access> {
        self.requests()
            .iter()
            .filter_map(Recorded::access)
            .collect()
    }

    pub fn clear_requests(&self) {
        self.inner.requests.lock().expect("requests lock").clear();
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Option<Pod> {
        self.lock()
            .pods
            .get(&(namespace.to_string(), name.to_string()))
            .map(|r| r.pod.clone())
    }

    /// How many times each pod name in `namespace` was created (201), deleted pods included.
    pub fn pods_created(&self, namespace: &str) -> BTreeMap<String, u32> {
        self.lock()
            .created
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .map(|((_, name), n)| (name.clone(), *n))
            .collect()
    }

    pub fn pods(&self, namespace: &str) -> Vec<Pod> {
        self.lock()
            .pods
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .map(|(_, r)| r.pod.clone())
            .collect()
    }

    pub fn secret(&self, namespace: &str, name: &str) -> Option<Secret> {
        self.lock()
            .secrets
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    pub fn secrets(&self, namespace: &str) -> Vec<Secret> {
        self.lock()
            .secrets
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// Store a secret directly (as an administrator would), not through the API.
    pub fn put_secret(&self, namespace: &str, name: &str, data: &[(&str, &str)]) {
        let secret = objects::secret(namespace, name, data);
        let mut st = self.lock();
        let rv = st.next_rv();
        let mut secret = secret;
        secret.metadata.resource_version = Some(rv.to_string());
        st.secrets.insert((namespace.into(), name.into()), secret);
    }

    /// The pod's log so far.
    pub fn logs(&self, namespace: &str, name: &str) -> Option<String> {
        self.lock()
            .pods
            .get(&(namespace.to_string(), name.to_string()))
            .map(|r| String::from_utf8_lossy(&r.logs.snapshot()).into_owned())
    }

    /// Change a pod's status directly, as the kubelet would (a MODIFIED event follows).
    pub fn update_status(&self, namespace: &str, name: &str, f: impl FnOnce(&mut Pod)) -> bool {
        objects::mutate_pod(self, namespace, name, f).is_some()
    }

    /// Delete a pod as someone else would (`kubectl delete pod`), with a grace period.
    pub fn delete_pod(&self, namespace: &str, name: &str, grace_seconds: i64) -> bool {
        objects::delete_pod(self, namespace, name, grace_seconds).is_ok()
    }

    /// Close every open watch stream now (clients must resume from their resourceVersion).
    pub fn cut_watches(&self) {
        self.inner.cut.send_modify(|v| *v += 1);
    }

    /// Forget the change history: the next resume of any watch gets `410 Gone`.
    pub fn compact(&self) {
        self.lock().compact();
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, state::State> {
        self.inner.state.lock().expect("state lock")
    }
}

/// Write a kubeconfig (JSON, which is valid YAML) pointing at `addr` over plain HTTP.
pub fn write_kubeconfig(path: &Path, addr: SocketAddr, namespace: &str) -> std::io::Result<()> {
    let cfg = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sim", "cluster": {"server": format!("http://{addr}")}}],
        "users": [{"name": "sim", "user": {"token": "sim-token"}}],
        "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": "sim", "namespace": namespace}}],
        "current-context": "sim",
        "preferences": {}
    });
    std::fs::write(path, serde_json::to_vec_pretty(&cfg)?)
}
