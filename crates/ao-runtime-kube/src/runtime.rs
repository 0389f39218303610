//! [`KubeRuntime`]: the `Runtime` trait over the Kubernetes API. Launch creates the task's
//! token Secret and Pod (idempotently: a `409 AlreadyExists` pod is adopted), stop and
//! cleanup delete them, adopt and workers read the watch's pod cache. What happens to pods
//! afterwards arrives through the single watch ([`crate::watch`]) and the per-task
//! pod followers ([`crate::pod_follower`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ao_core::runtime::{Adoption, EventSender, LaunchSpec, Runtime, RuntimeError};
use ao_core::store::TaskStore;
use ao_core::task::{Task, TaskId, TaskSpec, WorkerRef};
use ao_core::validation::ValidationError;
use async_trait::async_trait;
use futures::FutureExt;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef};
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::KubeConfig;
use crate::error::{is_already_exists, is_not_found, to_runtime};
use crate::pod::{self, SELECTOR, pod_name, task_id_of, token_secret_name};
use crate::pod_follower::{self, Seen};
use crate::podstate::{PodState, classify, container_started};

pub(crate) struct Inner {
    pub cfg: KubeConfig,
    pub store: Arc<dyn TaskStore>,
    pub events: EventSender,
    pub pods: Api<Pod>,
    pub secrets: Api<Secret>,
    /// The watch's pod cache (slimmed pods: metadata and status).
    pub cache: reflector::Store<Pod>,
    writer: Mutex<Option<reflector::store::Writer<Pod>>>,
    /// Tasks this process follows, with the latest news of their pod.
    pub tracked: Mutex<HashMap<TaskId, watch::Sender<Seen>>>,
    pub cancel: CancellationToken,
}

/// The Kubernetes runtime: one ephemeral worker Pod per task.
///
/// Wiring: build the client with [`crate::client_from_config`], then
/// `let rt = Arc::new(KubeRuntime::new(client, args.into_config(), store, events_tx));`
/// call [`Runtime::start`] once (it spawns the pod watch; needs a Tokio runtime), and give
/// `rt` to the scheduler. The other methods never start anything themselves: before the
/// watch's cache is filled they ask the API directly. Dropping the runtime stops its watch
/// and log followers.
pub struct KubeRuntime {
    inner: Arc<Inner>,
}

impl KubeRuntime {
    pub fn new(
        client: kube::Client,
        cfg: KubeConfig,
        store: Arc<dyn TaskStore>,
        events: EventSender,
    ) -> Self {
        let pods = Api::namespaced(client.clone(), &cfg.namespace);
        let secrets = Api::namespaced(client, &cfg.namespace);
        let (cache, writer) = reflector::store();
        KubeRuntime {
            inner: Arc::new(Inner {
                cfg,
                store,
                events,
                pods,
                secrets,
                cache,
                writer: Mutex::new(Some(writer)),
                tracked: Mutex::new(HashMap::new()),
                cancel: CancellationToken::new(),
            }),
        }
    }

    /// Stop the watch and every log follower (running pods are left alone).
    pub fn shutdown(&self) {
        self.inner.cancel.cancel();
    }

    /// Number of tasks this runtime follows right now.
    pub fn followed(&self) -> usize {
        self.inner.tracked.lock().len()
    }

    /// Pods in the watch cache.
    pub fn cached_pods(&self) -> usize {
        self.inner.cache.len()
    }

    fn worker_ref(id: TaskId) -> WorkerRef {
        WorkerRef {
            runtime: "kubernetes".into(),
            name: pod_name(id),
        }
    }

    /// The pod of a task: from the watch cache once it is filled, else from the API.
    async fn find_pod(&self, id: TaskId) -> Result<Option<Arc<Pod>>, RuntimeError> {
        let ready = tokio::time::timeout(
            self.inner.cfg.cache_ready_timeout,
            self.inner.cache.wait_until_ready(),
        )
        .await;
        let name = pod_name(id);
        if matches!(ready, Ok(Ok(()))) {
            return Ok(self
                .inner
                .cache
                .get(&ObjectRef::new(&name).within(&self.inner.cfg.namespace)));
        }
        debug!(task_id = %id, "pod cache not ready; asking the API");
        match pod::read_pod(&self.inner.pods, &name).await {
            Ok(p) => Ok(p.map(Arc::new)),
            Err(e) => Err(to_runtime(e, RuntimeError::Other)),
        }
    }

    /// Follow a task: register it before anything can happen to its pod, so no change is missed.
    fn track(&self, id: TaskId, created: bool) -> Option<watch::Receiver<Seen>> {
        let mut tracked = self.inner.tracked.lock();
        if tracked.contains_key(&id) {
            return None;
        }
        let pod = self
            .inner
            .cache
            .get(&ObjectRef::new(&pod_name(id)).within(&self.inner.cfg.namespace));
        let (tx, rx) = watch::channel(Seen {
            pod,
            created,
            ..Default::default()
        });
        tracked.insert(id, tx);
        Some(rx)
    }

    fn untrack(&self, id: TaskId) {
        self.inner.tracked.lock().remove(&id);
    }

    fn mark(&self, id: TaskId, f: impl FnOnce(&mut Seen)) {
        if let Some(tx) = self.inner.tracked.lock().get(&id) {
            tx.send_modify(f);
        }
    }

    /// Create the task's token Secret; returns its uid (a failed launch deletes exactly it).
    async fn create_token_secret(
        &self,
        id: TaskId,
        token: &str,
    ) -> Result<Option<String>, kube::Error> {
        let secret = pod::build_token_secret(&self.inner.cfg, id, token);
        let pp = PostParams::default();
        let retry = self.inner.cfg.retry;
        let created = match crate::error::retry_api(&retry, id, "create secret", || {
            self.inner.secrets.create(&pp, &secret)
        })
        .await
        {
            Ok(s) => s,
            Err(e) if is_already_exists(&e) => {
                // Left from an earlier attempt, with an older token: replace it (the RBAC
                // allows create and delete only).
                debug!(task_id = %id, "token secret exists; replacing it");
                self.delete_secret(id).await?;
                crate::error::retry_api(&retry, id, "create secret", || {
                    self.inner.secrets.create(&pp, &secret)
                })
                .await?
            }
            Err(e) => return Err(e),
        };
        Ok(created.metadata.uid)
    }

    /// Delete the token Secret of a launch whose pod create failed, in the background (under
    /// throttling it would hold the launch, and the scheduler's step, as long as the create
    /// did), and only if it is still the one that launch made (`uid` precondition): a later
    /// launch of the task may have replaced it already.
    fn forget_token_secret(&self, id: TaskId, uid: String) {
        let secrets = self.inner.secrets.clone();
        let retry = self.inner.cfg.retry;
        tokio::spawn(async move {
            let name = token_secret_name(id);
            let dp = DeleteParams {
                preconditions: Some(kube::api::Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match crate::error::retry_api(&retry, id, "delete secret", || {
                secrets.delete(&name, &dp)
            })
            .await
            {
                Ok(_) => debug!(task_id = %id, "token secret of the failed launch deleted"),
                // Gone, or 409: replaced by a later launch (the uid precondition failed).
                Err(e) if is_not_found(&e) || is_already_exists(&e) => {}
                Err(e) => {
                    warn!(task_id = %id, error = %e, "the token secret of a failed launch was not deleted; the task's cleanup deletes it")
                }
            }
        });
    }

    async fn delete_secret(&self, id: TaskId) -> Result<(), kube::Error> {
        let name = token_secret_name(id);
        let dp = DeleteParams::default();
        match crate::error::retry_api(&self.inner.cfg.retry, id, "delete secret", || {
            self.inner.secrets.delete(&name, &dp)
        })
        .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn delete_pod(&self, id: TaskId, grace: Duration) -> Result<bool, kube::Error> {
        let name = pod_name(id);
        let dp = DeleteParams {
            grace_period_seconds: Some(u32::try_from(grace.as_secs()).unwrap_or(u32::MAX)),
            ..Default::default()
        };
        match crate::error::retry_api(&self.inner.cfg.retry, id, "delete pod", || {
            self.inner.pods.delete(&name, &dp)
        })
        .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Drop for KubeRuntime {
    fn drop(&mut self) {
        self.inner.cancel.cancel();
    }
}

#[async_trait]
impl Runtime for KubeRuntime {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn admit(&self, spec: &TaskSpec) -> Result<(), ValidationError> {
        pod::admit(spec)
    }

    fn worker_name(&self, id: TaskId) -> Option<String> {
        Some(pod_name(id))
    }

    /// Spawn the pod watch. A second call is refused: there is one watch per runtime.
    async fn start(&self) -> Result<(), RuntimeError> {
        let Some(writer) = self.inner.writer.lock().take() else {
            return Err(RuntimeError::other(
                "the Kubernetes runtime is already started",
            ));
        };
        let inner = self.inner.clone();
        let cancel = inner.cancel.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = crate::watch::run(inner, writer) => {}
            }
        });
        Ok(())
    }

    async fn launch(&self, spec: LaunchSpec) -> Result<WorkerRef, RuntimeError> {
        let id = spec.task.id;
        pod::admit(&spec.task.spec).map_err(RuntimeError::launch)?;
        let Some(rx) = self.track(id, false) else {
            debug!(task_id = %id, "launch of a task already followed");
            return Ok(Self::worker_ref(id));
        };
        let mut secret_uid = None;
        if let Some(cb) = &spec.callback {
            match self.create_token_secret(id, &cb.token).await {
                Ok(uid) => secret_uid = uid,
                Err(e) => {
                    self.untrack(id);
                    warn!(task_id = %id, error = %e, "creating the worker token secret failed");
                    return Err(to_runtime(e, RuntimeError::Launch));
                }
            }
        }
        let pod = pod::build_pod(&self.inner.cfg, &spec);
        let pp = PostParams::default();
        match crate::error::retry_api(&self.inner.cfg.retry, id, "create pod", || {
            self.inner.pods.create(&pp, &pod)
        })
        .await
        {
            Ok(_) => info!(task_id = %id, pod = %pod_name(id), "worker pod created"),
            Err(e) if is_already_exists(&e) => {
                info!(task_id = %id, "worker pod already exists; adopting it")
            }
            Err(e) => {
                self.untrack(id);
                if let Some(uid) = secret_uid {
                    self.forget_token_secret(id, uid);
                }
                warn!(task_id = %id, error = %e, "creating the worker pod failed");
                return Err(to_runtime(e, RuntimeError::Launch));
            }
        }
        self.mark(id, |s| s.created = true);
        pod_follower::spawn(self.inner.clone(), id, rx);
        Ok(Self::worker_ref(id))
    }

    async fn stop(&self, task_id: TaskId, grace: Duration) -> Result<(), RuntimeError> {
        self.mark(task_id, |s| s.stop_requested = true);
        info!(task_id = %task_id, grace_s = grace.as_secs(), "deleting the worker pod");
        match self.delete_pod(task_id, grace).await {
            Ok(true) => Ok(()),
            Ok(false) => {
                // Already gone: its DELETED event may have been missed.
                self.mark(task_id, |s| s.deleted = true);
                Ok(())
            }
            Err(e) => Err(to_runtime(e, RuntimeError::Other)),
        }
    }

    async fn release_all(&self) {
        // Dropping a task's sender ends its pod follower, which aborts its log follower.
        let released = std::mem::take(&mut *self.inner.tracked.lock());
        info!(
            released = released.len(),
            "stopped following the worker pods; the next leader adopts them"
        );
    }

    async fn adopt(&self, task: &Task) -> Result<Adoption, RuntimeError> {
        let id = task.id;
        let Some(pod) = self.find_pod(id).await? else {
            info!(task_id = %id, "no worker pod to adopt");
            let _ = self.delete_secret(id).await;
            return Ok(Adoption::NotFound);
        };
        if let PodState::Finished(exit) = classify(&pod) {
            if container_started(&pod) {
                let name = pod_name(id);
                let output = crate::logs::open(&self.inner, id);
                let drain = crate::logs::follow(&self.inner, id, &name, &output);
                match tokio::time::timeout(self.inner.cfg.log_drain_timeout, drain).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        warn!(task_id = %id, error = %e, "reading the finished worker's log failed")
                    }
                    Err(_) => warn!(task_id = %id, "the finished worker's log did not end in time"),
                }
                if let Err(e) = output.finish().await {
                    warn!(task_id = %id, error = %e, "the finished worker's output is incomplete");
                }
            }
            info!(task_id = %id, code = ?exit.code, "worker pod finished while nobody watched");
            return Ok(Adoption::Exited(exit));
        }
        if let Some(rx) = self.track(id, true) {
            pod_follower::spawn(self.inner.clone(), id, rx);
        }
        info!(task_id = %id, pod = %pod_name(id), "adopted the worker pod");
        Ok(Adoption::Alive(Self::worker_ref(id)))
    }

    async fn workers(&self) -> Result<Vec<TaskId>, RuntimeError> {
        let ready = self
            .inner
            .cache
            .wait_until_ready()
            .now_or_never()
            .is_some_and(|r| r.is_ok());
        if ready {
            return Ok(self
                .inner
                .cache
                .state()
                .iter()
                .filter_map(|p| task_id_of(p))
                .collect());
        }
        let lp = ListParams::default().labels(SELECTOR);
        let list = self
            .inner
            .pods
            .list(&lp)
            .await
            .map_err(|e| to_runtime(e, RuntimeError::Other))?;
        Ok(list.items.iter().filter_map(task_id_of).collect())
    }

    async fn cleanup(&self, task_id: TaskId) -> Result<(), RuntimeError> {
        self.mark(task_id, |s| s.stop_requested = true);
        debug!(task_id = %task_id, "deleting the worker pod and its token secret");
        self.delete_pod(task_id, Duration::ZERO)
            .await
            .map_err(|e| to_runtime(e, RuntimeError::Other))?;
        self.delete_secret(task_id)
            .await
            .map_err(|e| to_runtime(e, RuntimeError::Other))
    }
}
