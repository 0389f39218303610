//! Pod volumes, made on the host under the node's work dir and bind-mounted into each
//! container's private mount namespace by [`crate::process`]: `emptyDir` (a fresh directory
//! owned by the pod's user and fsGroup), `secret`, `configMap`, `downwardAPI` and `projected`
//! (including `serviceAccountToken` through the TokenRequest API, as the kubelet does; the
//! token is not refreshed). Other volume types are refused, loudly.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, ServiceAccount, Volume,
};
use kube::Api;
use kube::api::PostParams;
use nix::unistd::{Gid, Uid, chown};

use crate::envs;
use crate::security::Identity;

/// A bind mount of a prepared volume into a container.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Mount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

/// Makes the pod's volumes under `dir`; the error is the kubelet's `FailedMount` message.
pub(crate) async fn prepare(
    client: &kube::Client,
    pod: &Pod,
    dir: &Path,
    owner: &Identity,
) -> Result<HashMap<String, PathBuf>, String> {
    let mut out = HashMap::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let path = dir.join(&v.name);
        let fail = |e: String| format!("MountVolume.SetUp failed for volume \"{}\" : {e}", v.name);
        if !path.exists() {
            let tmp = dir.join(format!(".{}.tmp", v.name));
            let _ = std::fs::remove_dir_all(&tmp);
            mkdir(&tmp, 0o755).map_err(|e| fail(e.to_string()))?;
            make(client, pod, v, &tmp, owner).await.map_err(fail)?;
            std::fs::rename(&tmp, &path).map_err(|e| fail(e.to_string()))?;
        }
        out.insert(v.name.clone(), path);
    }
    Ok(out)
}

async fn make(
    client: &kube::Client,
    pod: &Pod,
    v: &Volume,
    dir: &Path,
    owner: &Identity,
) -> Result<(), String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let group = owner.fs_group;
    if v.empty_dir.is_some() {
        set_mode(dir, 0o777)?;
        return chown(
            dir,
            Some(Uid::from_raw(owner.uid)),
            group.map(Gid::from_raw),
        )
        .map_err(|e| e.to_string());
    }
    if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let data = secret(client, ns, &name, s.optional).await?;
        return write_items(
            dir,
            &data,
            s.items.as_deref(),
            s.default_mode.unwrap_or(0o644),
            group,
        );
    }
    if let Some(c) = &v.config_map {
        let data = config_map(client, ns, &c.name, c.optional).await?;
        return write_items(
            dir,
            &data,
            c.items.as_deref(),
            c.default_mode.unwrap_or(0o644),
            group,
        );
    }
    if let Some(d) = &v.downward_api {
        return write_downward(
            dir,
            pod,
            d.items.as_deref().unwrap_or(&[]),
            d.default_mode.unwrap_or(0o644),
            group,
        );
    }
    let Some(p) = &v.projected else {
        return Err("volume type not supported by ao-kube-node (emptyDir, secret, configMap, downwardAPI, projected are)".into());
    };
    let mode = p.default_mode.unwrap_or(0o644);
    for src in p.sources.iter().flatten() {
        if let Some(s) = &src.secret {
            let data = secret(client, ns, &s.name, s.optional).await?;
            write_items(dir, &data, s.items.as_deref(), mode, group)?;
        }
        if let Some(c) = &src.config_map {
            let data = config_map(client, ns, &c.name, c.optional).await?;
            write_items(dir, &data, c.items.as_deref(), mode, group)?;
        }
        if let Some(d) = &src.downward_api {
            write_downward(dir, pod, d.items.as_deref().unwrap_or(&[]), mode, group)?;
        }
        if let Some(t) = &src.service_account_token {
            let token = token(client, pod, t.audience.clone(), t.expiration_seconds).await?;
            write_file(&dir.join(&t.path), token.as_bytes(), mode, group)?;
        }
    }
    Ok(())
}

/// The bind mounts of one container, with their mount points created on the host.
pub(crate) fn mounts(
    c: &Container,
    volumes: &HashMap<String, PathBuf>,
) -> Result<Vec<Mount>, String> {
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let Some(dir) = volumes.get(&m.name) else {
            return Err(format!(
                "volume \"{}\" not found in the pod's volumes",
                m.name
            ));
        };
        let source = match m.sub_path.as_deref() {
            Some(sub) if !sub.is_empty() => dir.join(sub),
            _ => dir.clone(),
        };
        let target = PathBuf::from(&m.mount_path);
        let made = if source.is_file() {
            target
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| {
                    if target.exists() {
                        Ok(())
                    } else {
                        std::fs::File::create(&target).map(drop)
                    }
                })
        } else {
            std::fs::create_dir_all(&source).and_then(|()| std::fs::create_dir_all(&target))
        };
        made.map_err(|e| format!("creating the mount point {}: {e}", target.display()))?;
        out.push(Mount {
            source,
            target,
            read_only: m.read_only.unwrap_or(false),
        });
    }
    Ok(out)
}

async fn secret(
    client: &kube::Client,
    ns: &str,
    name: &str,
    optional: Option<bool>,
) -> Result<HashMap<String, String>, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await.map_err(|e| e.to_string())? {
        Some(s) => Ok(envs::secret_data(s).into_iter().collect()),
        None if optional == Some(true) => Ok(HashMap::new()),
        None => Err(format!("secret \"{name}\" not found")),
    }
}

async fn config_map(
    client: &kube::Client,
    ns: &str,
    name: &str,
    optional: Option<bool>,
) -> Result<HashMap<String, String>, String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await.map_err(|e| e.to_string())? {
        Some(c) => Ok(c.data.unwrap_or_default().into_iter().collect()),
        None if optional == Some(true) => Ok(HashMap::new()),
        None => Err(format!("configmap \"{name}\" not found")),
    }
}

async fn token(
    client: &kube::Client,
    pod: &Pod,
    audience: Option<String>,
    expiration: Option<i64>,
) -> Result<String, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.into_iter().filter(|a| !a.is_empty()).collect(),
            expiration_seconds: Some(expiration.unwrap_or(3600)),
            bound_object_ref: Some(BoundObjectReference {
                kind: Some("Pod".into()),
                api_version: Some("v1".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..Default::default()
    };
    let made = api
        .create_token_request(&sa, &PostParams::default(), &request)
        .await
        .map_err(|e| e.to_string())?;
    made.status
        .map(|s| s.token)
        .ok_or_else(|| "TokenRequest answered without a token".into())
}

fn write_items(
    dir: &Path,
    data: &HashMap<String, String>,
    items: Option<&[KeyToPath]>,
    mode: i32,
    group: Option<u32>,
) -> Result<(), String> {
    match items {
        None => data
            .iter()
            .try_for_each(|(k, v)| write_file(&dir.join(k), v.as_bytes(), mode, group)),
        Some(items) => items.iter().try_for_each(|i| match data.get(&i.key) {
            Some(v) => write_file(
                &dir.join(&i.path),
                v.as_bytes(),
                i.mode.unwrap_or(mode),
                group,
            ),
            None => Err(format!(
                "configmap or secret references non-existent key {}",
                i.key
            )),
        }),
    }
}

fn write_downward(
    dir: &Path,
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    mode: i32,
    group: Option<u32>,
) -> Result<(), String> {
    for i in items {
        let Some(f) = &i.field_ref else {
            return Err("downwardAPI resourceFieldRef is not supported by ao-kube-node".into());
        };
        let value = envs::field(pod, &f.field_path)?;
        write_file(
            &dir.join(&i.path),
            value.as_bytes(),
            i.mode.unwrap_or(mode),
            group,
        )?;
    }
    Ok(())
}

fn write_file(path: &Path, data: &[u8], mode: i32, group: Option<u32>) -> Result<(), String> {
    let err = |e: std::io::Error| format!("writing {}: {e}", path.display());
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    std::fs::write(path, data).map_err(err)?;
    set_mode(path, mode as u32)?;
    if let Some(g) = group {
        chown(path, None, Some(Gid::from_raw(g))).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn mkdir(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::create_dir_all(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn mounts_create_their_mount_points_and_keep_read_only() {
        let host = tempfile::tempdir().unwrap();
        let vol = host.path().join("vol");
        std::fs::create_dir_all(&vol).unwrap();
        std::fs::write(vol.join("key"), "v").unwrap();
        let target = host.path().join("mnt/data");
        let file_target = host.path().join("etc/key");
        let c: Container = serde_json::from_value(json!({"name": "c", "volumeMounts": [
            {"name": "v", "mountPath": target, "readOnly": true},
            {"name": "v", "mountPath": file_target, "subPath": "key"},
        ]}))
        .unwrap();
        let vols = HashMap::from([("v".to_owned(), vol.clone())]);
        let m = mounts(&c, &vols).unwrap();
        assert_eq!(
            m[0],
            Mount {
                source: vol.clone(),
                target: target.clone(),
                read_only: true
            }
        );
        assert_eq!(m[1].source, vol.join("key"));
        assert!(target.is_dir() && file_target.is_file());
        let missing: Container = serde_json::from_value(
            json!({"name": "c", "volumeMounts": [{"name": "x", "mountPath": "/x"}]}),
        )
        .unwrap();
        assert!(mounts(&missing, &vols).unwrap_err().contains("\"x\""));
    }

    #[test]
    fn items_pick_keys_paths_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let data = HashMap::from([
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
        ]);
        let items = [KeyToPath {
            key: "a".into(),
            path: "sub/x".into(),
            mode: Some(0o600),
        }];
        write_items(dir.path(), &data, Some(&items), 0o644, None).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("sub/x")).unwrap(),
            "1"
        );
        assert!(!dir.path().join("b").exists());
        let mode = std::fs::metadata(dir.path().join("sub/x"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
}
