//! One pod's life on this node, from bound to deleted: prepare (retrying while an image,
//! Secret or volume is missing), start the containers, watch them (exit, memory, deadline,
//! graceful deletion, node shutdown), write each change through `pods/status`, and finally
//! delete the pod with `gracePeriodSeconds=0` and a uid precondition, as the kubelet does.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

mod api;

use crate::container::{self, Exit, Kill};
use crate::logs::{self, LogWriter};
use crate::status::{self, CState, ContainerView};
use crate::{Mode, Shared, process};

/// How long the node waits before trying a pod's missing image, Secret or volume again.
const RETRY: Duration = Duration::from_secs(2);
const DEADLINE_MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

/// What happened to the pod in the API while we waited.
enum Change {
    Updated,
    Deleting(Duration),
    Gone,
    Cancelled,
}

/// Runs one pod until it is deleted (or gone, or the node shuts down).
pub(crate) async fn run_pod(shared: Arc<Shared>, rx: watch::Receiver<Option<Pod>>) {
    let Some(pod) = rx.borrow().clone() else {
        return;
    };
    let span = tracing::info_span!(
        "pod",
        namespace = pod.metadata.namespace.as_deref().unwrap_or(""),
        pod = pod.metadata.name.as_deref().unwrap_or(""),
        uid = pod.metadata.uid.as_deref().unwrap_or("")
    );
    PodTask::new(shared, pod, rx).run().instrument(span).await
}

struct PodTask {
    shared: Arc<Shared>,
    rx: watch::Receiver<Option<Pod>>,
    api: Api<Pod>,
    pod: Pod,
    ns: String,
    name: String,
    uid: String,
    dir: PathBuf,
    start_time: Timestamp,
    containers: Vec<ContainerView>,
    failure: Option<&'static str>,
    written: Option<(Vec<ContainerView>, Option<&'static str>)>,
}

impl PodTask {
    fn new(shared: Arc<Shared>, pod: Pod, rx: watch::Receiver<Option<Pod>>) -> Self {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let start_time = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map_or_else(Timestamp::now, |t| t.0);
        let containers = pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .map(|c| ContainerView {
                name: c.name.clone(),
                termination_message: None,
                image: c.image.clone().unwrap_or_default(),
                state: CState::waiting("ContainerCreating", ""),
            })
            .collect();
        PodTask {
            api: Api::namespaced(shared.client.clone(), &ns),
            dir: shared.work_dir.join("pods").join(&uid),
            shared,
            rx,
            pod,
            ns,
            name,
            uid,
            start_time,
            containers,
            failure: None,
            written: None,
        }
    }

    async fn run(mut self) {
        let phase = self
            .pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        let deleting = self.pod.metadata.deletion_timestamp.is_some();
        if !status::is_terminal(&phase) && !deleting {
            let finished = match self.shared.mode {
                Mode::Noop => self.run_noop().await,
                Mode::Process => self.run_processes().await,
            };
            if !finished {
                return self.cleanup();
            }
        }
        // Terminal (or deleted before it started): stay until deleted, then finish deletion.
        while self.pod.metadata.deletion_timestamp.is_none() {
            match self.next_change().await {
                Change::Updated | Change::Deleting(_) => continue,
                Change::Gone | Change::Cancelled => return self.cleanup(),
            }
        }
        self.finish_deletion().await;
        self.cleanup();
    }

    /// Running without a process until deleted (or its deadline). Returns true when the pod
    /// should now wait for (or finish) its deletion.
    async fn run_noop(&mut self) -> bool {
        let now = Timestamp::now();
        for c in &mut self.containers {
            c.state = CState::Running { started: now };
        }
        self.write().await;
        let deadline = self.deadline();
        loop {
            tokio::select! {
                change = self.next_change() => match change {
                    Change::Updated => continue,
                    Change::Deleting(_) => return true,
                    Change::Gone | Change::Cancelled => return false,
                },
                () = container::sleep_until(deadline) => {
                    // As if its (absent) processes were killed: exit 137, pod Failed.
                    for c in &mut self.containers {
                        c.state = CState::exited(137, Some(now), Timestamp::now());
                    }
                    self.failure = Some("DeadlineExceeded");
                    self.write().await;
                    return true;
                }
            }
        }
    }

    /// Returns true when the pod should now wait for (or finish) its deletion.
    async fn run_processes(&mut self) -> bool {
        let vols = self.dir.join("volumes");
        if let Err(error) = std::fs::create_dir_all(&vols)
            .and_then(|()| std::fs::create_dir_all(self.dir.join("logs")))
        {
            tracing::warn!(error = %error, "creating the pod's directory");
        }
        let mut attempt = 0;
        let deadline = self.deadline();
        let specs = loop {
            match container::prepare(&self.shared, &self.pod, &vols, attempt).await {
                Ok(specs) => break specs,
                Err(states) => {
                    for (c, s) in self.containers.iter_mut().zip(states) {
                        c.state = s;
                    }
                    self.write().await;
                    attempt += 1;
                }
            }
            tokio::select! {
                change = self.next_change() => match change {
                    Change::Updated => {}
                    Change::Deleting(_) => return true,
                    Change::Gone | Change::Cancelled => return false,
                },
                () = tokio::time::sleep(RETRY) => {}
                () = container::sleep_until(deadline) => {
                    self.failure = Some("DeadlineExceeded");
                    self.write().await;
                    return true;
                }
            }
        };
        self.start_and_watch(specs).await
    }

    async fn start_and_watch(&mut self, specs: Vec<process::Spec>) -> bool {
        let (kill_tx, kill_rx) = watch::channel(None);
        let mut running: JoinSet<(usize, Exit)> = JoinSet::new();
        let limits: Vec<Option<u64>> = self
            .pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .map(container::memory_limit)
            .collect();
        for (i, spec) in specs.iter().enumerate() {
            let started = Timestamp::now();
            match self.spawn(i, spec).await {
                Ok(run) => {
                    self.containers[i].state = CState::Running { started };
                    let (limit, kill) = (limits[i], kill_rx.clone());
                    running.spawn(
                        async move { (i, container::supervise(run, limit, kill).await) }
                            .in_current_span(),
                    );
                }
                Err(error) => {
                    tracing::info!(error = %error, container = %self.containers[i].name, "container failed to start");
                    self.containers[i].state = CState::Terminated {
                        exit_code: 128,
                        reason: "StartError".into(),
                        started: None,
                        finished: Timestamp::now(),
                    };
                    let argv0 = spec.argv.first().map_or("", String::as_str);
                    self.containers[i].termination_message =
                        Some(format!("failed to start {argv0:?}: {error}"));
                }
            }
        }
        self.write().await;
        let mut deleting = false;
        let deadline = self.deadline();
        while !running.is_empty() {
            tokio::select! {
                Some(done) = running.join_next() => {
                    if let Ok((i, exit)) = done {
                        self.exited(i, exit).await;
                        self.write().await;
                    }
                }
                // Still listening while the grace period runs: a force delete or the node's
                // shutdown cuts it short.
                change = self.next_change() => match change {
                    Change::Updated => {}
                    Change::Deleting(_) if deleting => {}
                    Change::Deleting(grace) => {
                        deleting = true;
                        kill_tx.send_replace(Some(Kill::Term(grace)));
                    }
                    Change::Gone | Change::Cancelled => {
                        kill_tx.send_replace(Some(Kill::Now));
                        while running.join_next().await.is_some() {}
                        return false;
                    }
                },
                () = container::sleep_until(deadline), if self.failure.is_none() => {
                    tracing::info!("active deadline exceeded: killing the containers");
                    self.failure = Some("DeadlineExceeded");
                    kill_tx.send_replace(Some(Kill::Now));
                }
            }
        }
        if self.failure.is_some() {
            self.write().await;
        }
        true
    }

    async fn spawn(&self, i: usize, spec: &process::Spec) -> std::io::Result<process::Running> {
        let name = &self.containers[i].name;
        let (writer, file) =
            LogWriter::create(self.dir.join("logs").join(format!("{name}.log"))).await?;
        self.shared.logs.insert(&self.ns, &self.name, name, file);
        process::spawn(spec, writer)
    }

    async fn exited(&mut self, i: usize, exit: Exit) {
        let c = &mut self.containers[i];
        let started = match c.state {
            CState::Running { started } => Some(started),
            _ => None,
        };
        let mut state = CState::exited(exit.code, started, exit.finished);
        if exit.oom
            && let CState::Terminated { reason, .. } = &mut state
        {
            *reason = "OOMKilled".into();
        }
        tracing::info!(container = %c.name, exit_code = exit.code, oom = exit.oom, "container exited");
        let spec = self
            .pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .find(|s| s.name == c.name);
        let policy = spec.and_then(|s| s.termination_message_policy.as_deref());
        if exit.code != 0 && policy == Some("FallbackToLogsOnError") {
            let log = self.dir.join("logs").join(format!("{}.log", c.name));
            c.termination_message = Some(logs::tail_message(&log).await).filter(|m| !m.is_empty());
        }
        c.state = state;
    }

    /// When the pod's `activeDeadlineSeconds` (counted from its start time) runs out.
    fn deadline(&self) -> Option<tokio::time::Instant> {
        let secs = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.active_deadline_seconds)?;
        let at = self.start_time + Duration::from_secs(u64::try_from(secs).unwrap_or(0));
        let left =
            Duration::try_from(at.duration_since(Timestamp::now())).unwrap_or(Duration::ZERO);
        Some(tokio::time::Instant::now() + left)
    }

    fn cleanup(&self) {
        self.shared.logs.remove_pod(&self.ns, &self.name);
        if self.dir.exists()
            && let Err(error) = std::fs::remove_dir_all(&self.dir)
        {
            tracing::warn!(error = %error, "removing the pod's directory");
        }
    }
}
