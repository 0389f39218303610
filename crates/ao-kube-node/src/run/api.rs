//! A pod task's conversation with the API server: what changed in the pod (through the pod
//! watch's channel), status writes through `pods/status`, and the final delete.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};

use super::{Change, DEADLINE_MESSAGE, PodTask};
use crate::status::{self, CState, PodView};

impl PodTask {
    pub(super) async fn next_change(&mut self) -> Change {
        tokio::select! {
            () = self.shared.cancel.cancelled() => Change::Cancelled,
            changed = self.rx.changed() => {
                let pod = match changed { Ok(()) => self.rx.borrow_and_update().clone(), Err(_) => None };
                let Some(pod) = pod else { return Change::Gone };
                self.pod = pod;
                if self.pod.metadata.deletion_timestamp.is_some() {
                    let grace = self.pod.metadata.deletion_grace_period_seconds.unwrap_or(30).max(0);
                    Change::Deleting(Duration::from_secs(grace as u64))
                } else {
                    Change::Updated
                }
            }
        }
    }

    /// Writes the status if it changed since the last write (retrying a failed write a few times).
    pub(super) async fn write(&mut self) {
        let now = (self.containers.clone(), self.failure);
        if self.written.as_ref() == Some(&now) {
            return;
        }
        let prev = self
            .pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        let patch = status::patch(&PodView {
            uid: &self.uid,
            start_time: self.start_time,
            containers: &self.containers,
            failure: self.failure.map(|r| (r, DEADLINE_MESSAGE)),
            prev_conditions: &prev,
            now: Timestamp::now(),
        });
        for attempt in 0..5u32 {
            let permit = self.shared.writes.acquire().await;
            let pp = PatchParams::default();
            let written = self
                .api
                .patch_status(&self.name, &pp, &Patch::Strategic(&patch))
                .await;
            drop(permit);
            match written {
                Ok(pod) => {
                    for c in &self.containers {
                        if let CState::Waiting { reason, .. } = &c.state {
                            self.shared
                                .logs
                                .set_waiting(&self.ns, &self.name, &c.name, reason);
                        }
                    }
                    self.pod.status = pod.status;
                    self.written = Some(now);
                    return;
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    tracing::debug!("pod gone: status not written");
                    return;
                }
                // Invalid: the name belongs to a new pod (uid differs), or a status we got wrong.
                Err(kube::Error::Api(e)) if e.code == 422 => {
                    tracing::warn!(message = %e.message, "pod status refused");
                    return;
                }
                Err(error) => {
                    tracing::warn!(error = %error, attempt, "writing the pod status");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
    }

    pub(super) async fn finish_deletion(&self) {
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.api.delete(&self.name, &dp).await {
            Ok(_) => tracing::debug!("pod deleted"),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(error) => tracing::warn!(error = %error, "finishing the pod's deletion"),
        }
    }
}
