//! The user a container runs as and the restrictions it runs under, from the pod's and the
//! container's `securityContext` (the container's fields win), as the kubelet computes them.
//! The node has no image metadata, so an image's default user is root (uid 0, gid 0).

use k8s_openapi::api::core::v1::{Container, Pod};

/// Who a container's process is and what it may do.
#[derive(Clone, Debug, PartialEq, Default)]
pub(crate) struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the pod's fsGroup and supplementalGroups.
    pub groups: Vec<u32>,
    /// The group that owns the pod's volumes.
    pub fs_group: Option<u32>,
    /// `allowPrivilegeEscalation: false` → `PR_SET_NO_NEW_PRIVS`.
    pub no_new_privs: bool,
    /// `readOnlyRootFilesystem: true` → `/` remounted read-only in the container.
    pub read_only_root: bool,
}

/// The container's identity, or the kubelet's `CreateContainerConfigError` message.
pub(crate) fn identity(pod: &Pod, c: &Container) -> Result<Identity, String> {
    let psc = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let csc = c.security_context.clone().unwrap_or_default();
    let uid = csc.run_as_user.or(psc.run_as_user).unwrap_or(0);
    let gid = csc.run_as_group.or(psc.run_as_group).unwrap_or(0);
    let non_root = csc.run_as_non_root.or(psc.run_as_non_root).unwrap_or(false);
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let uid_str = pod.metadata.uid.as_deref().unwrap_or("");
    if non_root && uid == 0 {
        let how = if csc.run_as_user.or(psc.run_as_user).is_some() {
            "runAsUser"
        } else {
            "image"
        };
        let what = if how == "image" {
            "image will run as root"
        } else {
            "runAsUser=0 will run as root"
        };
        return Err(format!(
            "container has runAsNonRoot and {what} (pod: \"{name}_{ns}({uid_str})\", container: {})",
            c.name
        ));
    }
    let to_u32 = |v: i64| u32::try_from(v).map_err(|_| format!("id {v} out of range"));
    let fs_group = psc.fs_group.map(to_u32).transpose()?;
    let mut groups: Vec<u32> = fs_group.into_iter().collect();
    for g in psc.supplemental_groups.iter().flatten() {
        groups.push(to_u32(*g)?);
    }
    Ok(Identity {
        uid: to_u32(uid)?,
        gid: to_u32(gid)?,
        groups,
        fs_group,
        no_new_privs: csc.allow_privilege_escalation == Some(false),
        read_only_root: csc.read_only_root_filesystem == Some(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(psc: serde_json::Value, csc: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "n", "uid": "u"},
            "spec": {"securityContext": psc, "containers": [{"name": "c", "securityContext": csc}]}})).unwrap()
    }

    fn of(p: &Pod) -> Result<Identity, String> {
        identity(p, &p.spec.as_ref().unwrap().containers[0])
    }

    #[test]
    fn container_fields_win_and_groups_include_fs_group() {
        let p = pod(
            json!({"runAsUser": 1000, "runAsGroup": 2000, "fsGroup": 3000, "supplementalGroups": [4000]}),
            json!({"runAsUser": 1001, "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true}),
        );
        assert_eq!(
            of(&p).unwrap(),
            Identity {
                uid: 1001,
                gid: 2000,
                groups: vec![3000, 4000],
                fs_group: Some(3000),
                no_new_privs: true,
                read_only_root: true
            }
        );
    }

    #[test]
    fn run_as_non_root_without_a_user_is_refused_like_the_kubelet() {
        let p = pod(json!({"runAsNonRoot": true}), json!({}));
        assert_eq!(
            of(&p).unwrap_err(),
            "container has runAsNonRoot and image will run as root (pod: \"p_n(u)\", container: c)"
        );
        let ok = pod(json!({"runAsNonRoot": true}), json!({"runAsUser": 65532}));
        assert_eq!(of(&ok).unwrap().uid, 65532);
    }
}
