//! A container runs as its user, in a private mount namespace with its emptyDir at the mount
//! path and `/` read-only.

use kube::api::LogParams;
use serde_json::json;

use crate::harness::{Setup, phase, pod, terminal};

#[tokio::test(flavor = "multi_thread")]
async fn run_as_user_and_empty_dir_mount_with_read_only_root() {
    let s = Setup::new("node-iso").await;
    let mount = format!("/tmp/ao-kube-node-test-{}", s.ns);
    let script = format!(
        "echo uid=$(id -u) gid=$(id -g) groups=$(id -G); \
         echo data > {mount}/f && cat {mount}/f; \
         stat -c 'owner=%u:%g' {mount}; \
         if touch /ao-kube-node-root-probe 2>/dev/null; then echo root-writable; else echo root-read-only; fi; \
         grep -c ' {mount} ' /proc/self/mountinfo"
    );
    let mut p = pod("iso", &script);
    p["spec"]["securityContext"]["runAsUser"] = json!(4321);
    p["spec"]["securityContext"]["runAsGroup"] = json!(4322);
    p["spec"]["securityContext"]["fsGroup"] = json!(4323);
    p["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = json!(true);
    p["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "scratch", "mountPath": mount}]);
    p["spec"]["volumes"] = json!([{"name": "scratch", "emptyDir": {}}]);
    s.create(p).await;
    let done = s.wait("iso", 60, "terminal", terminal()).await;
    let logs = s.pods.logs("iso", &LogParams::default()).await.unwrap();
    assert_eq!(phase(&done), "Succeeded", "{logs}");
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(
        lines,
        [
            "uid=4321 gid=4322 groups=4322 4323",
            "data",
            "owner=4321:4323",
            "root-read-only",
            "1"
        ],
        "{logs}"
    );
    // The mount was private to the container: on the host the mount point is an empty dir.
    let host = std::path::Path::new(&mount);
    assert!(
        host.is_dir() && std::fs::read_dir(host).unwrap().next().is_none(),
        "the emptyDir leaked to the host"
    );
    assert!(!std::path::Path::new("/ao-kube-node-root-probe").exists());
    let _ = std::fs::remove_dir(host);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn env_field_refs_and_working_dir() {
    let s = Setup::new("node-env").await;
    let mut p = pod("envs", "echo $POD $NS $IP $NODE $SA $(pwd) $GREETING");
    p["spec"]["containers"][0]["workingDir"] = json!("/tmp");
    p["spec"]["containers"][0]["env"] = json!([
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
        {"name": "GREETING", "value": "hi-$(POD)"},
    ]);
    s.create(p).await;
    s.wait("envs", 60, "terminal", terminal()).await;
    let logs = s.pods.logs("envs", &LogParams::default()).await.unwrap();
    let node = s.node.as_ref().unwrap().name();
    assert_eq!(
        logs,
        format!("envs {} 127.0.0.1 {node} default /tmp hi-envs\n", s.ns)
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_dir_over_tmp_hides_neither_later_volumes_nor_nested_mount_points() {
    // The node's work dir (where volume sources live) is under /tmp in this test.
    let s = Setup::new("node-nest").await;
    let script = "echo a > /tmp/in-tmp && echo b > /tmp/nested/in-nested && ls /tmp && cat /tmp/nested/in-nested";
    let mut p = pod("nest", script);
    p["spec"]["containers"][0]["volumeMounts"] = json!([
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "nested", "mountPath": "/tmp/nested"},
    ]);
    p["spec"]["volumes"] =
        json!([{"name": "tmp", "emptyDir": {}}, {"name": "nested", "emptyDir": {}}]);
    s.create(p).await;
    let done = s.wait("nest", 60, "terminal", terminal()).await;
    let logs = s.pods.logs("nest", &LogParams::default()).await.unwrap();
    assert_eq!(phase(&done), "Succeeded", "{logs}");
    assert_eq!(logs, "in-tmp\nnested\nb\n");
    assert!(
        !std::path::Path::new("/tmp/in-tmp").exists(),
        "the container's /tmp leaked to the host"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_child_that_left_the_process_group_ends_with_the_container() {
    let s = Setup::new("node-escape").await;
    // `setsid` puts the sleep in its own session and group; a cgroup would still hold it.
    s.create(pod(
        "escape",
        "setsid sleep 300 & echo child=$!; sleep 2; exit 0",
    ))
    .await;
    let done = s.wait("escape", 60, "terminal", terminal()).await;
    assert_eq!(phase(&done), "Succeeded");
    let logs = s.pods.logs("escape", &LogParams::default()).await.unwrap();
    let pid: i32 = logs
        .trim()
        .strip_prefix("child=")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{logs:?}"));
    let proc_path = format!("/proc/{pid}");
    let gone = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while std::path::Path::new(&proc_path).exists() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    });
    assert!(
        gone.await.is_ok(),
        "the escaped child {pid} outlived its container"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_image_under_a_mount_path_stays_visible() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::new("node-imgtmp").await;
    // The image directory is under /tmp, and the pod mounts an emptyDir at /tmp.
    let dir = s.image.path();
    assert!(
        dir.starts_with("/tmp"),
        "this test needs the image under /tmp: {}",
        dir.display()
    );
    let prog = dir.join("bin/ao-hello");
    std::fs::write(&prog, "#!/bin/sh\necho hello-from-image\n").unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut p = pod("imgtmp", "");
    p["spec"]["containers"][0]["command"] =
        json!(["sh", "-c", "ao-hello && touch /tmp/writable && echo tmp-ok"]);
    p["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "tmp", "mountPath": "/tmp"}]);
    p["spec"]["volumes"] = json!([{"name": "tmp", "emptyDir": {}}]);
    s.create(p).await;
    let done = s.wait("imgtmp", 60, "terminal", terminal()).await;
    let logs = s.pods.logs("imgtmp", &LogParams::default()).await.unwrap();
    assert_eq!(phase(&done), "Succeeded", "{logs}");
    assert_eq!(logs, "hello-from-image\ntmp-ok\n");
    s.shutdown().await;
}
