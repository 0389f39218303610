//! The test environment is a real, locked-down API server: RBAC refuses what a fresh
//! ServiceAccount was not granted, Pod Security "restricted" refuses an unhardened pod in a
//! namespace from `namespace()`, and the audit log records both with the right user names.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ao_kube_testenv::env;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::Api;
use kube::api::{ListParams, PostParams};

fn forbidden(err: &kube::Error) -> Option<String> {
    match err {
        kube::Error::Api(status) if status.code == 403 => Some(status.message.clone()),
        _ => None,
    }
}

#[tokio::test]
async fn a_fresh_service_account_is_refused_by_rbac_and_audited_under_its_own_name() {
    let env = env();
    let ns = env.namespace("rbac").await;
    let admin = env.admin().await;
    let sa: ServiceAccount = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "probe" }
    }))
    .unwrap();
    Api::<ServiceAccount>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let kubeconfig = env
        .token_kubeconfig(&ns, "probe", &dir.join("probe.kubeconfig"))
        .await;
    let mode = std::fs::metadata(&kubeconfig).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the token kubeconfig must be private");

    let probe = env.client(&kubeconfig).await;
    let mark = env.audit_offset();
    let err = Api::<Pod>::namespaced(probe, &ns)
        .list(&ListParams::default())
        .await
        .expect_err("a ServiceAccount without a Role must not list pods");
    let message = forbidden(&err).unwrap_or_else(|| panic!("expected 403, got {err:?}"));
    let user = format!("system:serviceaccount:{ns}:probe");
    assert!(message.contains(&user), "{message}");
    // The admin may.
    Api::<Pod>::namespaced(admin, &ns)
        .list(&ListParams::default())
        .await
        .unwrap();

    let events = env.audit();
    let refused = events
        .iter()
        .find(|e| e.user == user && e.verb == "list" && e.resource.as_deref() == Some("pods"))
        .unwrap_or_else(|| panic!("no audit event of {user} listing pods"));
    assert_eq!(refused.code, 403);
    assert_eq!(refused.namespace.as_deref(), Some(ns.as_str()));
    assert_eq!(refused.stage, "ResponseComplete");
    assert!(events.iter().any(|e| e.user == "admin"
        && e.verb == "list"
        && e.namespace.as_deref() == Some(ns.as_str())
        && e.code == 200));

    // The window after the mark has the refused list, and not the ServiceAccount's creation.
    let window = env.audit_since(mark);
    assert!(
        window.contains(refused),
        "audit_since misses the refused list"
    );
    assert!(
        !window
            .iter()
            .any(|e| e.resource.as_deref() == Some("serviceaccounts")
                && e.verb == "create"
                && e.namespace.as_deref() == Some(ns.as_str())),
        "audit_since returned events from before the mark"
    );
    assert!(window.len() < events.len());
}

#[tokio::test]
async fn an_unhardened_pod_is_refused_by_pod_security_restricted() {
    let env = env();
    let start = env.audit_offset();
    let ns = env.namespace("pss").await;
    let pods = Api::<Pod>::namespaced(env.admin().await, &ns);
    // A pod without any securityContext (as the original service's pods are). (A privileged
    // one never reaches Pod Security: kube-apiserver runs without --allow-privileged.)
    let plain: Pod = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "plain" },
        "spec": { "containers": [{ "name": "c", "image": "ao-testenv.local/none:x" }] }
    }))
    .unwrap();
    let err = pods
        .create(&PostParams::default(), &plain)
        .await
        .expect_err("restricted must refuse a pod without hardening");
    let message = forbidden(&err).unwrap_or_else(|| panic!("expected 403, got {err:?}"));
    assert!(
        message.contains("violates PodSecurity \"restricted:latest\""),
        "{message}"
    );
    for missing in [
        "allowPrivilegeEscalation",
        "runAsNonRoot",
        "seccompProfile",
        "capabilities",
    ] {
        assert!(
            message.contains(missing),
            "{missing} not named in: {message}"
        );
    }

    // The same pod hardened as "restricted" asks is admitted: the labels, not a blanket
    // refusal, decide.
    let hardened: Pod = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "hardened" },
        "spec": {
            "securityContext": { "runAsNonRoot": true, "runAsUser": 1000,
                                 "seccompProfile": { "type": "RuntimeDefault" } },
            "containers": [{
                "name": "c", "image": "ao-testenv.local/none:x",
                "securityContext": { "allowPrivilegeEscalation": false,
                                     "capabilities": { "drop": ["ALL"] } }
            }]
        }
    }))
    .unwrap();
    pods.create(&PostParams::default(), &hardened)
        .await
        .unwrap();

    let events = env.audit_since(start);
    let refused = events
        .iter()
        .find(|e| {
            e.verb == "create"
                && e.resource.as_deref() == Some("pods")
                && e.namespace.as_deref() == Some(ns.as_str())
                && e.code == 403
        })
        .expect("no audit event of the refused create");
    assert_eq!(refused.user, "admin");
    assert!(events.iter().any(|e| e.verb == "create"
        && e.namespace.as_deref() == Some(ns.as_str())
        && e.name.as_deref() == Some("hardened")
        && e.code == 201));
}

/// `env()` works from a plain (non-async) test too; kubectl reaches it as admin; images are
/// world-readable.
#[test]
fn env_attaches_from_a_sync_test_and_lays_out_world_readable_images() {
    let env = env();
    assert!(
        env.server.starts_with("https://127.0.0.1:"),
        "{}",
        env.server
    );
    assert!(env.etcd.starts_with("http://127.0.0.1:"), "{}", env.etcd);
    for f in [
        "ca.crt",
        "node.crt",
        "node.key",
        "node-client.crt",
        "node-client.key",
    ] {
        assert!(
            env.pki.join(f).is_file(),
            "{f} missing in {}",
            env.pki.display()
        );
    }
    let whoami = env
        .kubectl(&env.admin_kubeconfig)
        .args([
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .output()
        .expect("kubectl must be on PATH");
    assert!(whoami.status.success(), "{whoami:?}");
    assert_eq!(String::from_utf8_lossy(&whoami.stdout), "admin");

    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let src = dir.join("hello");
    std::fs::write(&src, "#!/bin/sh\necho hello\n").unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (reference, image) = env.image("hello", &[("hello", src.as_path())]);
    let (other, _) = env.image("hello", &[("hello", src.as_path())]);
    assert_ne!(reference, other, "each image() call makes its own image");
    assert!(
        reference.starts_with("ao-testenv.local/hello:"),
        "{reference}"
    );
    let bin = image.join("bin/hello");
    assert_eq!(
        std::fs::read_to_string(&bin).unwrap(),
        "#!/bin/sh\necho hello\n"
    );
    let mut p: &Path = &bin;
    while let Some(parent) = p.parent() {
        let mode = std::fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o005,
            0o005,
            "{} is not world-readable ({mode:o})",
            p.display()
        );
        p = parent;
    }
}

/// A second API server on the same etcd, with flags of the test's own: it serves the same
/// objects, and asking again (from any test) gets the same server.
#[tokio::test]
async fn an_extra_api_server_shares_etcd_and_is_started_once_per_name() {
    let env = env();
    let (url, kubeconfig) = env.extra_apiserver("testenv-probe", &["--watch-cache=false"]);
    assert!(
        url.starts_with("https://127.0.0.1:") && url != env.server,
        "{url}"
    );
    assert_eq!(
        env.extra_apiserver("testenv-probe", &["--watch-cache=false"]),
        (url.clone(), kubeconfig.clone())
    );
    let ns = env.namespace("extra").await;
    let sa = Api::<ServiceAccount>::namespaced(env.client(&kubeconfig).await, &ns)
        .get("default")
        .await
        .expect("the extra API server must see what the main one wrote");
    assert_eq!(sa.metadata.namespace.as_deref(), Some(ns.as_str()));
}
