//! A container's environment, resolved as the kubelet does: `value` (with `$(VAR)`
//! expansion), `valueFrom` (`secretKeyRef`, `configMapKeyRef`, `fieldRef`) and `envFrom`.
//! Secrets and ConfigMaps are fetched through the API first ([`fetch`]); resolution itself is
//! pure ([`resolve`]) and fails with the kubelet's `CreateContainerConfigError` message.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVarSource, Pod, Secret};
use kube::Api;

use crate::status::POD_IP;

/// The Secrets and ConfigMaps a pod's containers refer to; `None` when one does not exist.
#[derive(Default, Debug)]
pub(crate) struct Sources {
    pub secrets: HashMap<String, Option<BTreeMap<String, String>>>,
    pub config_maps: HashMap<String, Option<BTreeMap<String, String>>>,
}

/// Fetches every Secret and ConfigMap the pod's containers' env refers to.
pub(crate) async fn fetch(client: &kube::Client, pod: &Pod) -> Result<Sources, kube::Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let (mut secret_names, mut cm_names) = (Vec::new(), Vec::new());
    for c in pod.spec.iter().flat_map(|s| &s.containers) {
        for e in c.env.iter().flatten() {
            let Some(from) = &e.value_from else { continue };
            secret_names.extend(from.secret_key_ref.as_ref().map(|r| r.name.clone()));
            cm_names.extend(from.config_map_key_ref.as_ref().map(|r| r.name.clone()));
        }
        for f in c.env_from.iter().flatten() {
            secret_names.extend(f.secret_ref.as_ref().map(|r| r.name.clone()));
            cm_names.extend(f.config_map_ref.as_ref().map(|r| r.name.clone()));
        }
    }
    let mut out = Sources::default();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    for name in secret_names {
        if let std::collections::hash_map::Entry::Vacant(slot) = out.secrets.entry(name) {
            let data = secrets.get_opt(slot.key()).await?.map(secret_data);
            slot.insert(data);
        }
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    for name in cm_names {
        if let std::collections::hash_map::Entry::Vacant(slot) = out.config_maps.entry(name) {
            let data = cms
                .get_opt(slot.key())
                .await?
                .map(|c| c.data.unwrap_or_default());
            slot.insert(data);
        }
    }
    Ok(out)
}

/// A Secret's data as text (values are given to processes as env or files).
pub(crate) fn secret_data(s: Secret) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = s.string_data.unwrap_or_default();
    for (k, v) in s.data.unwrap_or_default() {
        out.insert(k, String::from_utf8_lossy(&v.0).into_owned());
    }
    out
}

/// The container's env in order, or the kubelet's message for why it cannot be built.
pub(crate) fn resolve(
    pod: &Pod,
    c: &Container,
    src: &Sources,
) -> Result<Vec<(String, String)>, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        env.retain(|(name, _)| *name != k);
        env.push((k, v));
    };
    for f in c.env_from.iter().flatten() {
        let prefix = f.prefix.as_deref().unwrap_or("");
        let data = if let Some(r) = &f.secret_ref {
            lookup(&src.secrets, &r.name, r.optional, "secret")?
        } else if let Some(r) = &f.config_map_ref {
            lookup(&src.config_maps, &r.name, r.optional, "configmap")?
        } else {
            None
        };
        for (k, v) in data.into_iter().flatten() {
            set(&mut env, format!("{prefix}{k}"), v.clone());
        }
    }
    for e in c.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (_, Some(from)) => match value_from(pod, ns, from, src)? {
                Some(v) => v,
                None => continue,
            },
            (Some(v), None) => expand(v, &env),
            (None, None) => String::new(),
        };
        set(&mut env, e.name.clone(), value);
    }
    Ok(env)
}

fn lookup<'a>(
    map: &'a HashMap<String, Option<BTreeMap<String, String>>>,
    name: &str,
    optional: Option<bool>,
    kind: &str,
) -> Result<Option<&'a BTreeMap<String, String>>, String> {
    match map.get(name).and_then(Option::as_ref) {
        Some(data) => Ok(Some(data)),
        None if optional == Some(true) => Ok(None),
        None => Err(format!("{kind} \"{name}\" not found")),
    }
}

/// One `valueFrom`; `Ok(None)` when an optional source is missing (the variable is unset).
fn value_from(
    pod: &Pod,
    ns: &str,
    from: &EnvVarSource,
    src: &Sources,
) -> Result<Option<String>, String> {
    if let Some(r) = &from.secret_key_ref {
        let Some(data) = lookup(&src.secrets, &r.name, r.optional, "secret")? else {
            return Ok(None);
        };
        return match data.get(&r.key) {
            Some(v) => Ok(Some(v.clone())),
            None if r.optional == Some(true) => Ok(None),
            None => Err(format!(
                "couldn't find key {} in Secret {ns}/{}",
                r.key, r.name
            )),
        };
    }
    if let Some(r) = &from.config_map_key_ref {
        let Some(data) = lookup(&src.config_maps, &r.name, r.optional, "configmap")? else {
            return Ok(None);
        };
        return match data.get(&r.key) {
            Some(v) => Ok(Some(v.clone())),
            None if r.optional == Some(true) => Ok(None),
            None => Err(format!(
                "couldn't find key {} in ConfigMap {ns}/{}",
                r.key, r.name
            )),
        };
    }
    if let Some(f) = &from.field_ref {
        return field(pod, &f.field_path).map(Some);
    }
    Err("resourceFieldRef is not supported by ao-kube-node".into())
}

/// A downward-API field of the pod (env `fieldRef` and `downwardAPI` volumes).
pub(crate) fn field(pod: &Pod, path: &str) -> Result<String, String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let quoted = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|r| r.strip_suffix("']"))
            .map(str::to_owned)
    };
    let v = match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.podIP" | "status.hostIP" | "status.podIPs" | "status.hostIPs" => {
            Some(POD_IP.to_owned())
        }
        _ => {
            if let Some(k) = quoted("metadata.labels['") {
                meta.labels.as_ref().and_then(|l| l.get(&k).cloned())
            } else if let Some(k) = quoted("metadata.annotations['") {
                meta.annotations.as_ref().and_then(|a| a.get(&k).cloned())
            } else {
                return Err(format!("unsupported fieldPath: {path}"));
            }
        }
    };
    Ok(v.unwrap_or_default())
}

/// Kubernetes' `$(VAR)` expansion: a defined variable is replaced, `$$` is a literal `$`,
/// anything else is left as written.
pub(crate) fn expand(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(close) = after.strip_prefix('(').and_then(|a| a.find(')')) {
            let name = &after[1..=close];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&rest[i..i + close + 3]),
            }
            rest = &after[close + 2..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
