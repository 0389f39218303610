//! Watching the test's pods on the API server as admin: wait for a condition through a watch
//! (never a sleep loop), record every version of a pod while something is done to it, and
//! read its log with `kubectl logs`.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ao_kube_testenv::env;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::wait::await_condition;
use kube::runtime::watcher::{self, Event};

/// Wait, through a watch on the API server (as admin), until the pod satisfies `cond`;
/// panics after `secs` naming `what`. Returns the pod (`None` once it is gone).
pub async fn wait_pod(
    pods: &Api<Pod>,
    name: &str,
    secs: u64,
    what: &str,
    cond: impl Fn(Option<&Pod>) -> bool,
) -> Option<Pod> {
    let waited = tokio::time::timeout(
        Duration::from_secs(secs),
        await_condition(pods.clone(), name, cond),
    )
    .await;
    match waited {
        Ok(Ok(pod)) => pod,
        Ok(Err(e)) => panic!("watching pod {name} for {what}: {e}"),
        Err(_) => panic!(
            "pod {name}: {what} did not happen within {secs} s; it is now {:#?}",
            pods.get_opt(name).await.ok().flatten().map(|p| p.status)
        ),
    }
}

/// The pod's phase.
pub fn phase(pod: Option<&Pod>) -> Option<&str> {
    pod?.status.as_ref()?.phase.as_deref()
}

/// `kubectl logs` of the pod with the admin kubeconfig.
pub fn kubectl_logs(ns: &str, pod: &str) -> String {
    let out = Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(&env().admin_kubeconfig)
        .args(["-n", ns, "logs", pod, "-c", "worker"])
        .output()
        .expect("run /usr/bin/kubectl");
    assert!(
        out.status.success(),
        "kubectl logs {ns}/{pod}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every version of one pod the API server reported on a watch, from the moment
/// [`PodRecorder::start`] returns (its initial list is done by then).
pub struct PodRecorder {
    versions: Arc<Mutex<Vec<Option<Pod>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl PodRecorder {
    pub async fn start(pods: &Api<Pod>, name: &str) -> PodRecorder {
        let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut stream = Box::pin(watcher::watcher(pods.clone(), cfg));
        let versions = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let sink = versions.clone();
        let task = tokio::spawn(async move {
            let mut ready_tx = Some(ready_tx);
            while let Some(ev) = stream.next().await {
                let seen = match ev {
                    Ok(Event::Apply(p) | Event::InitApply(p)) => Some(p),
                    Ok(Event::Delete(_)) => None,
                    Ok(Event::InitDone) => {
                        if let Some(tx) = ready_tx.take() {
                            let _ = tx.send(());
                        }
                        continue;
                    }
                    Ok(Event::Init) | Err(_) => continue,
                };
                sink.lock().expect("recorder lock").push(seen);
            }
        });
        tokio::time::timeout(Duration::from_secs(30), ready)
            .await
            .expect("the pod watch listed within 30 s")
            .expect("the pod watch runs");
        PodRecorder { versions, task }
    }

    /// The versions seen so far (`None`: the pod was deleted).
    pub fn versions(&self) -> Vec<Option<Pod>> {
        self.versions.lock().expect("recorder lock").clone()
    }
}

impl Drop for PodRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
