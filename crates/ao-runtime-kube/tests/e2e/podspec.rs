//! What the orchestrator sends to Kubernetes: every pod it created, decoded from the
//! simulator's records, carries the hardening and lifecycle fields; no secret value is ever
//! in a request body; oversized tasks are refused at admission; kubectl reads the objects.

use std::time::Duration;

use ao_core::runtime::Runtime;
use base64::Engine;
use k8s_openapi::api::core::v1::Pod;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_created_pod_is_hardened_and_no_secret_leaks() {
    let mut e = env().await;
    let ids: Vec<_> =
        futures::future::join_all((0..3).map(|i| submit(&e.store, spec(&format!("prompt {i}")))))
            .await;
    for id in &ids {
        run_to_end(&mut e.sched, &e.store, *id, Duration::from_secs(10)).await;
    }
    let reqs = e.sim.requests();
    let creates: Vec<_> = reqs
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/api/v1/namespaces/agents/pods")
        .collect();
    assert_eq!(creates.len(), ids.len());
    for r in &creates {
        let pod: Pod = serde_json::from_slice(&r.body).unwrap();
        let id = pod.metadata.labels.as_ref().unwrap()["agent-orchestrator/task-id"].clone();
        assert_eq!(
            pod.metadata.name.as_deref(),
            Some(format!("claude-worker-{id}").as_str())
        );
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["app"], "claude-worker");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "agent-orchestrator");
        let ann = pod.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann["agent-orchestrator/model"], "claude-sonnet-4-5");
        assert_eq!(
            ann["agent-orchestrator/repository"],
            "https://github.com/example/repo"
        );
        assert_eq!(ann["agent-orchestrator/labels"], r#"{"team":"infra"}"#);
        assert!(ann.contains_key("agent-orchestrator/created-at"));
        assert!(
            !ann.values().any(|v| v.contains("prompt")),
            "no prompt in annotations"
        );
        let s = pod.spec.as_ref().unwrap();
        assert_eq!(s.restart_policy.as_deref(), Some("Never"));
        assert_eq!(s.active_deadline_seconds, Some(600));
        assert_eq!(s.automount_service_account_token, Some(false));
        assert_eq!(s.service_account_name.as_deref(), Some("claude-worker"));
        assert_eq!(s.enable_service_links, Some(false));
        assert_ne!(s.host_network, Some(true));
        assert_ne!(s.host_pid, Some(true));
        assert_ne!(s.host_ipc, Some(true));
        let psc = s.security_context.as_ref().unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(
            (psc.run_as_user, psc.run_as_group, psc.fs_group),
            (Some(10001), Some(10001), Some(10001))
        );
        assert_eq!(
            psc.seccomp_profile.as_ref().unwrap().type_,
            "RuntimeDefault"
        );
        let vols = s.volumes.as_ref().unwrap();
        assert!(
            vols.iter()
                .all(|v| v.empty_dir.is_some() && v.host_path.is_none())
        );
        assert_eq!(s.containers.len(), 1);
        let c = &s.containers[0];
        let csc = c.security_context.as_ref().unwrap();
        assert_eq!(csc.allow_privilege_escalation, Some(false));
        assert_eq!(csc.read_only_root_filesystem, Some(true));
        assert_eq!(csc.run_as_non_root, Some(true));
        assert_ne!(csc.privileged, Some(true));
        assert_eq!(
            csc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_string()][..])
        );
        assert_eq!(
            c.termination_message_policy.as_deref(),
            Some("FallbackToLogsOnError")
        );
        assert_eq!(
            c.image.as_deref(),
            Some("example.test/agent-orchestrator:test")
        );
        let mounts: Vec<_> = c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.mount_path.as_str())
            .collect();
        assert_eq!(mounts, ["/workspace", "/home/agent", "/tmp"]);
        let res = c.resources.as_ref().unwrap();
        for k in ["cpu", "memory", "ephemeral-storage"] {
            assert!(
                res.requests.as_ref().unwrap().contains_key(k),
                "request {k}"
            );
            assert!(res.limits.as_ref().unwrap().contains_key(k), "limit {k}");
        }
        let env = c.env.as_ref().unwrap();
        let get = |n: &str| {
            env.iter()
                .find(|e| e.name == n)
                .unwrap_or_else(|| panic!("env {n}"))
        };
        assert_eq!(get("AO_TASK_ID").value.as_deref(), Some(id.as_str()));
        assert!(
            get("AO_TASK_SPEC")
                .value
                .as_deref()
                .unwrap()
                .contains("\"prompt\":\"prompt ")
        );
        assert_eq!(get("AO_WORKSPACE").value.as_deref(), Some("/workspace"));
        assert_eq!(get("HOME").value.as_deref(), Some("/home/agent"));
        assert_eq!(
            get("AO_CALLBACK_URL").value.as_deref(),
            Some("http://orchestrator.agents.svc:8080")
        );
        assert_eq!(get("FOO").value.as_deref(), Some("bar"));
        let sref = |n: &str| {
            get(n)
                .value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .clone()
                .unwrap()
        };
        assert_eq!(
            (
                sref("AO_CALLBACK_TOKEN").name,
                sref("AO_CALLBACK_TOKEN").key
            ),
            (format!("claude-worker-{id}-token"), "token".into())
        );
        assert_eq!(sref("ANTHROPIC_API_KEY").name, "claude-worker-secrets");
        assert_eq!(sref("GITHUB_TOKEN").optional, Some(true));
        for n in ["AO_CALLBACK_TOKEN", "ANTHROPIC_API_KEY", "GITHUB_TOKEN"] {
            assert!(get(n).value.is_none(), "{n} has no literal value");
        }
    }
    // The per-task tokens, as stored in the simulated secrets, appear in no request except
    // their own secret's creation (base64-encoded there); the shared secret's values never.
    let tokens: Vec<String> = e
        .sim
        .secrets(NS)
        .iter()
        .filter(|s| {
            s.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.ends_with("-token"))
        })
        .map(|s| String::from_utf8(s.data.as_ref().unwrap()["token"].0.clone()).unwrap())
        .collect();
    assert_eq!(tokens.len(), ids.len());
    for r in &reqs {
        let body = String::from_utf8_lossy(&r.body);
        for secret in [API_KEY, GH_TOKEN]
            .iter()
            .map(|s| s.to_string())
            .chain(tokens.iter().cloned())
        {
            assert!(
                !body.contains(&secret),
                "secret value in {} {}",
                r.method,
                r.path
            );
            let b64 = base64::engine::general_purpose::STANDARD.encode(&secret);
            if body.contains(&b64) {
                assert!(
                    r.method == "POST" && r.path.ends_with("/secrets"),
                    "token in {} {}",
                    r.method,
                    r.path
                );
            }
        }
        assert!(
            !(r.method == "GET" && r.path.contains("/secrets")),
            "secrets are never read"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_prompt_is_refused_at_admission() {
    let e = env().await;
    let big = "x".repeat(130 * 1024);
    let err = e.runtime.admit(&spec(&big)).unwrap_err();
    assert_eq!(err.field, "prompt");
    assert!(e.runtime.admit(&spec(&"x".repeat(100 * 1024))).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_reads_and_deletes_what_the_orchestrator_created() {
    let mut e = env().await;
    let id = submit(&e.store, spec("for kubectl")).await;
    e.sim
        .set_behaviour(&pod_name(id), ao_kube_sim::Behaviour::forever());
    let (sim, name) = (e.sim.clone(), pod_name(id));
    tick_until(&mut e.sched, Duration::from_secs(5), || {
        sim.pod(NS, &name).is_some()
    })
    .await;
    let addr = e.sim.serve_tcp().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    ao_kube_sim::write_kubeconfig(&kc, addr, NS).unwrap();
    let kubectl = |args: &[&str]| {
        let kc = kc.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new("kubectl")
                    .arg("--kubeconfig")
                    .arg(&kc)
                    .args(&args)
                    .env("HOME", kc.parent().unwrap())
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let out = kubectl(&["get", "pods", "-n", NS, "-o", "json"]).await;
    assert!(
        out.status.success(),
        "kubectl get: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["items"][0]["metadata"]["name"], name.as_str());
    let out = kubectl(&["delete", "pod", &name, "-n", NS, "--wait=false"]).await;
    assert!(
        out.status.success(),
        "kubectl delete: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = run_to_end(&mut e.sched, &e.store, id, Duration::from_secs(40)).await;
    assert_eq!(
        t.reason,
        ao_core::lifecycle::Reason::WorkerLost,
        "deleted by someone else"
    );
}
