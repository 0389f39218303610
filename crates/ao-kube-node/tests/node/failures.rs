//! What stops a pod from starting or ends it early: a missing Secret, an unknown image, the
//! active deadline and the memory limit.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{LogParams, PostParams};
use serde_json::json;

use crate::harness::{Setup, phase, pod, state, terminal, waiting};

#[tokio::test(flavor = "multi_thread")]
async fn secret_key_ref_resolves_and_missing_secret_waits_then_starts() {
    let s = Setup::new("node-secret").await;
    let mut p = pod("sec", "echo \"token=$TOKEN\"");
    p["spec"]["containers"][0]["env"] = json!([
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "x", "optional": true}}},
    ]);
    s.create(p).await;
    let w = s
        .wait(
            "sec",
            60,
            "waiting on its Secret",
            waiting("CreateContainerConfigError"),
        )
        .await;
    assert_eq!(
        state(&w).waiting.unwrap().message.as_deref(),
        Some("secret \"creds\" not found")
    );
    assert_eq!(phase(&w), "Pending");
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "creds"}, "stringData": {"token": "s3cr3t"}}),
    )
    .unwrap();
    kube::Api::<Secret>::namespaced(s.admin.clone(), &s.ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let done = s
        .wait("sec", 60, "terminal after the Secret appeared", terminal())
        .await;
    assert_eq!(phase(&done), "Succeeded");
    assert_eq!(
        s.pods.logs("sec", &LogParams::default()).await.unwrap(),
        "token=s3cr3t\n"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_image_is_err_image_pull_then_back_off_and_never_starts() {
    let s = Setup::new("node-image").await;
    let mut p = pod("img", "echo must not run");
    p["spec"]["containers"][0]["image"] = json!("registry.invalid/nope:1");
    s.create(p).await;
    let w = s
        .wait("img", 60, "ErrImagePull", waiting("ErrImagePull"))
        .await;
    let message = state(&w).waiting.unwrap().message.unwrap_or_default();
    assert!(
        message.starts_with("failed to pull and unpack image \"registry.invalid/nope:1\""),
        "{message}"
    );
    let b = s
        .wait("img", 60, "ImagePullBackOff", waiting("ImagePullBackOff"))
        .await;
    assert_eq!(phase(&b), "Pending");
    assert!(state(&b).running.is_none() && state(&b).terminated.is_none());
    // pods/log answers as the kubelet does for a container that never started.
    let logs = s.pods.logs("img", &LogParams::default()).await;
    let Err(kube::Error::Api(e)) = logs else {
        panic!("pods/log of a never-started container: {logs:?}")
    };
    assert!(
        e.message
            .contains("is waiting to start: trying and failing to pull image"),
        "{e:?}"
    );
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn active_deadline_fails_the_pod_with_deadline_exceeded() {
    let s = Setup::new("node-deadline").await;
    let mut p = pod("dl", "sleep 60");
    p["spec"]["activeDeadlineSeconds"] = json!(2);
    s.create(p).await;
    let done = s
        .wait("dl", 60, "terminal by its deadline", terminal())
        .await;
    let st = done.status.clone().unwrap();
    assert_eq!(phase(&done), "Failed");
    assert_eq!(st.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(
        st.message.as_deref(),
        Some("Pod was active on the node longer than the specified deadline")
    );
    assert_eq!(state(&done).terminated.unwrap().exit_code, 137);
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_limit_kills_the_container_as_oom_killed() {
    let s = Setup::new("node-oom").await;
    let grow = "import time\nx = []\nprint('allocating', flush=True)\nwhile True:\n    x.append(bytearray(8 << 20)); time.sleep(0.01)";
    let mut p = pod("oom", "");
    p["spec"]["containers"][0]["command"] = json!(["python3", "-c", grow]);
    p["spec"]["containers"][0]["resources"] = json!({"limits": {"memory": "64Mi"}});
    s.create(p).await;
    let done = s
        .wait("oom", 60, "terminal over its memory limit", terminal())
        .await;
    assert_eq!(phase(&done), "Failed");
    let t = state(&done).terminated.unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (137, Some("OOMKilled")));
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pod_waiting_on_its_secret_is_deleted_without_waiting_for_it() {
    let s = Setup::new("node-secdel").await;
    let mut p = pod("never", "echo never");
    p["spec"]["terminationGracePeriodSeconds"] = json!(300);
    p["spec"]["containers"][0]["env"] =
        json!([{"name": "T", "valueFrom": {"secretKeyRef": {"name": "missing", "key": "k"}}}]);
    let uid = s.create(p).await.metadata.uid.unwrap();
    s.wait(
        "never",
        60,
        "waiting on its Secret",
        waiting("CreateContainerConfigError"),
    )
    .await;
    let started = std::time::Instant::now();
    s.pods.delete("never", &Default::default()).await.unwrap();
    s.wait_gone("never", &uid, 30).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    s.shutdown().await;
}
