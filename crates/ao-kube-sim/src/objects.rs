//! Object operations shared by the HTTP handlers, the kubelet and the test handle: create,
//! mutate, delete (graceful: `deletionTimestamp` first, removal once the kubelet is done) and
//! remove, each committing a change that watches see.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, PodStatus, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::Sim;
use crate::logs::LogBuf;
use crate::state::{ChangeKind, PodRec};
use crate::status::ApiError;

pub fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// Store a new pod (201) and hand it to the kubelet; `409 AlreadyExists` if the name is taken.
pub fn create_pod(sim: &Sim, namespace: &str, mut pod: Pod) -> Result<Pod, ApiError> {
    let name = pod
        .metadata
        .name
        .clone()
        .ok_or_else(|| ApiError::new(422, "Invalid", "metadata.name: Required value"))?;
    let (stored, kill_rx, logs, behaviour) = {
        let mut st = sim.lock();
        let key = (namespace.to_string(), name.clone());
        if st.pods.contains_key(&key) {
            return Err(ApiError::already_exists("pods", &name));
        }
        pod.metadata.namespace = Some(namespace.to_string());
        pod.metadata.uid = Some(st.next_uid());
        pod.metadata.creation_timestamp = Some(now());
        pod.metadata.generation = Some(1);
        pod.status = Some(PodStatus {
            phase: Some("Pending".into()),
            qos_class: Some("Guaranteed".into()),
            ..Default::default()
        });
        let stored = st.commit(namespace, pod, ChangeKind::Added);
        let (kill, kill_rx) = tokio::sync::watch::channel(None);
        let logs = Arc::new(LogBuf::default());
        *st.created.entry(key.clone()).or_default() += 1;
        st.pods.insert(
            key,
            PodRec {
                pod: stored.clone(),
                logs: logs.clone(),
                kill,
            },
        );
        let behaviour = st
            .behaviours
            .get(&name)
            .cloned()
            .unwrap_or_else(|| sim.inner.cfg.default_behaviour.clone());
        (stored, kill_rx, logs, behaviour)
    };
    tokio::spawn(crate::kubelet::run(
        sim.clone(),
        namespace.to_string(),
        name,
        behaviour,
        kill_rx,
        logs,
    ));
    Ok(stored)
}

/// Apply `f` to a stored pod and commit a MODIFIED change. `None` if there is no such pod.
pub fn mutate_pod(sim: &Sim, namespace: &str, name: &str, f: impl FnOnce(&mut Pod)) -> Option<Pod> {
    let mut st = sim.lock();
    let key = (namespace.to_string(), name.to_string());
    let mut pod = st.pods.get(&key)?.pod.clone();
    f(&mut pod);
    let stored = st.commit(namespace, pod, ChangeKind::Modified);
    if let Some(rec) = st.pods.get_mut(&key) {
        rec.pod = stored.clone();
    }
    Some(stored)
}

/// Begin a graceful deletion: set `deletionTimestamp` and tell the kubelet. The object goes
/// away when the kubelet has stopped the container.
pub fn delete_pod(sim: &Sim, namespace: &str, name: &str, grace: i64) -> Result<Pod, ApiError> {
    let mut st = sim.lock();
    let key = (namespace.to_string(), name.to_string());
    let Some(rec) = st.pods.get(&key) else {
        return Err(ApiError::not_found("pods", name));
    };
    if rec.pod.metadata.deletion_timestamp.is_some() {
        // Already terminating; a shorter grace period still applies.
        let prev = *rec.kill.borrow();
        if prev.is_none_or(|p| grace < p) {
            rec.kill.send_replace(Some(grace));
        }
        return Ok(rec.pod.clone());
    }
    let mut pod = rec.pod.clone();
    pod.metadata.deletion_timestamp = Some(now());
    pod.metadata.deletion_grace_period_seconds = Some(grace);
    let stored = st.commit(namespace, pod, ChangeKind::Modified);
    let rec = st.pods.get_mut(&key).expect("present");
    rec.pod = stored.clone();
    rec.kill.send_replace(Some(grace));
    Ok(stored)
}

/// Remove the object for good (the kubelet is done with it): a DELETED change.
pub fn remove_pod(sim: &Sim, namespace: &str, name: &str) {
    let mut st = sim.lock();
    if let Some(rec) = st.pods.remove(&(namespace.to_string(), name.to_string())) {
        st.commit(namespace, rec.pod, ChangeKind::Deleted);
    }
}

/// A secret object with string data.
pub fn secret(namespace: &str, name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect::<BTreeMap<_, _>>(),
        ),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

pub fn create_secret(sim: &Sim, namespace: &str, mut secret: Secret) -> Result<Secret, ApiError> {
    let name = secret
        .metadata
        .name
        .clone()
        .ok_or_else(|| ApiError::new(422, "Invalid", "metadata.name: Required value"))?;
    let mut st = sim.lock();
    let key = (namespace.to_string(), name.clone());
    if st.secrets.contains_key(&key) {
        return Err(ApiError::already_exists("secrets", &name));
    }
    // stringData is write-only: fold it into data, as the API server does.
    if let Some(sd) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(BTreeMap::new);
        for (k, v) in sd {
            data.insert(k, ByteString(v.into_bytes()));
        }
    }
    secret.metadata.namespace = Some(namespace.into());
    secret.metadata.uid = Some(st.next_uid());
    secret.metadata.creation_timestamp = Some(now());
    secret.metadata.resource_version = Some(st.next_rv().to_string());
    st.secrets.insert(key, secret.clone());
    Ok(secret)
}

pub fn delete_secret(sim: &Sim, namespace: &str, name: &str) -> Result<Secret, ApiError> {
    let mut st = sim.lock();
    st.next_rv();
    st.secrets
        .remove(&(namespace.to_string(), name.to_string()))
        .ok_or_else(|| ApiError::not_found("secrets", name))
}

/// The value of `key` in a stored secret, as text.
pub fn secret_value(sim: &Sim, namespace: &str, name: &str, key: &str) -> Option<String> {
    let st = sim.lock();
    let s = st.secrets.get(&(namespace.to_string(), name.to_string()))?;
    s.data
        .as_ref()?
        .get(key)
        .map(|b| String::from_utf8_lossy(&b.0).into_owned())
}
