//! The server binary with `--runtime kubernetes` against the Kubernetes API simulator: the
//! same task API, with each task run as a Pod whose container the simulated kubelet runs as a
//! local process.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use ao_kube_sim::{Behaviour, Sim, SimConfig};
use common::{ServerProcess, script};
use serde_json::{Value, json};

fn start(dir: &std::path::Path, kubeconfig: &std::path::Path) -> ServerProcess {
    let data = dir.join("data");
    ServerProcess::start(
        &[
            "--runtime",
            "kubernetes",
            "--callback-url",
            "http://127.0.0.1:9",
            "--require-result",
            "false",
            "--stop-grace",
            "1",
            "--data-dir",
        ]
        .map(std::ffi::OsStr::new)
        .into_iter()
        .chain([data.as_os_str()])
        .collect::<Vec<_>>(),
        &[
            ("KUBECONFIG", kubeconfig.as_os_str()),
            ("AO_KUBECONFIG", "".as_ref()),
        ],
    )
}

#[tokio::test]
async fn tasks_run_as_pods_through_the_server_binary() {
    let dir = tempfile::tempdir().unwrap();
    // The pod's `agent-orchestrator worker` runs this script, with the pod's env resolved.
    let worker = script(
        dir.path(),
        "pod-worker.sh",
        r#"echo "pod task $AO_TASK_ID"
echo "$AO_TASK_SPEC" | grep -q '"prompt"' && echo "spec received"
[ -n "$SLEEP" ] && sleep "$SLEEP"
exit "${EXIT:-0}""#,
    );
    let sim = Sim::new(SimConfig {
        default_behaviour: Behaviour::Process,
        programs: HashMap::from([("agent-orchestrator".to_string(), worker)]),
        ..SimConfig::default()
    });
    sim.put_secret(
        "agents",
        "claude-worker-secrets",
        &[
            ("ANTHROPIC_API_KEY", "sk-test-pod-secret"),
            ("GITHUB_TOKEN", "ghp-test-pod-secret"),
        ],
    );
    let addr = sim.serve_tcp().await.unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    ao_kube_sim::write_kubeconfig(&kubeconfig, addr, "agents").unwrap();
    let server = start(dir.path(), &kubeconfig);
    let c = common::client();
    let submit = |env: Value| {
        let c = c.clone();
        let base = server.base.clone();
        async move {
            let r = c
                .post(format!("{base}/api/v1/tasks"))
                .json(&json!({"prompt": "through k8s", "env": env}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let ok = submit(json!({})).await;
    let bad = submit(json!({"EXIT": "3"})).await;
    let slow = submit(json!({"SLEEP": "60"})).await;

    let t = server.wait_status(&c, &ok, common::TERMINAL).await;
    assert_eq!(
        (t["status"].as_str(), t["reason"].as_str()),
        (Some("succeeded"), Some("completed")),
        "{t:#}"
    );
    assert_eq!(t["worker"]["runtime"], "kubernetes");
    assert_eq!(t["worker"]["name"], format!("claude-worker-{ok}"));
    let logs = c
        .get(format!("{}/api/v1/tasks/{ok}/logs", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        logs.contains(&format!("pod task {ok}")) && logs.contains("spec received"),
        "{logs}"
    );
    let t = server.wait_status(&c, &bad, common::TERMINAL).await;
    assert_eq!(
        (t["status"].as_str(), t["reason"].as_str()),
        (Some("failed"), Some("exit_code_3")),
        "{t:#}"
    );

    for _ in 0..200 {
        let t: Value = c
            .get(format!("{}/api/v1/tasks/{slow}", server.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if t["status"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = c
        .post(format!("{}/api/v1/tasks/{slow}/cancel", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let t = server.wait_status(&c, &slow, common::TERMINAL).await;
    assert_eq!(
        (t["status"].as_str(), t["reason"].as_str()),
        (Some("cancelled"), Some("cancelled_by_user")),
        "{t:#}"
    );

    // The pods the server created carry the labels and hardening, and no secret values.
    let pod = sim
        .pod("agents", &format!("claude-worker-{ok}"))
        .or_else(|| sim.pods("agents").into_iter().next());
    if let Some(pod) = pod {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("app").map(String::as_str), Some("claude-worker"));
        let spec = pod.spec.unwrap();
        assert_eq!(spec.automount_service_account_token, Some(false));
    }
    for r in sim.requests() {
        let body = format!("{r:?}");
        assert!(
            !body.contains("sk-test-pod-secret") && !body.contains("ghp-test-pod-secret"),
            "secret in a request: {body}"
        );
    }
}

/// The whole product path through Kubernetes: the pod runs the real `agent-orchestrator
/// worker`, which runs the real Claude Code CLI against the fake Anthropic API, streams its
/// events back to the server through the callback, and reports an answered result.
#[tokio::test]
async fn an_agent_task_runs_in_a_pod_with_the_real_worker() {
    use ao_testkit::{FakeAnthropic, Script, Turn};
    let dir = tempfile::tempdir().unwrap();
    let api_key = format!("sk-ant-k8s-{}", std::process::id());
    let anthropic = FakeAnthropic::start(
        Script::new()
            .api_key(api_key.clone())
            .turn(Turn::text_only("The answer is 42.")),
    )
    .await;
    // The image would have `claude` on PATH; here a wrapper points the worker at the pinned CLI.
    let wrapper = script(
        dir.path(),
        "agent-orchestrator",
        &format!(
            "AO_CLAUDE_BIN='{}' exec '{}' \"$@\"",
            ao_testkit::claude_bin().display(),
            common::BIN
        ),
    );
    let sim = Sim::new(SimConfig {
        default_behaviour: Behaviour::Process,
        programs: HashMap::from([("agent-orchestrator".to_string(), wrapper)]),
        ..SimConfig::default()
    });
    sim.put_secret(
        "agents",
        "claude-worker-secrets",
        &[("ANTHROPIC_API_KEY", api_key.as_str())],
    );
    let addr = sim.serve_tcp().await.unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    ao_kube_sim::write_kubeconfig(&kubeconfig, addr, "agents").unwrap();
    // Pods call back to the server, so its address must be known before it starts.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let callback = format!("http://{listen}");
    let data = dir.path().join("data");
    let base_url = anthropic.base_url();
    let server = ServerProcess::start(
        &[
            "--runtime",
            "kubernetes",
            "--listen",
            &listen,
            "--callback-url",
            &callback,
            "--worker-anthropic-base-url",
            &base_url,
            "--data-dir",
        ]
        .map(std::ffi::OsStr::new)
        .into_iter()
        .chain([data.as_os_str()])
        .collect::<Vec<_>>(),
        &[
            ("KUBECONFIG", kubeconfig.as_os_str()),
            ("AO_KUBECONFIG", "".as_ref()),
        ],
    );
    let c = common::client();
    let r = c
        .post(format!("{}/api/v1/tasks", server.base))
        .json(&json!({"prompt": "What is the answer?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let t = server.wait_status(&c, &id, common::TERMINAL).await;
    let logs = c
        .get(format!("{}/api/v1/tasks/{id}/logs", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        (t["status"].as_str(), t["reason"].as_str()),
        (Some("succeeded"), Some("answered")),
        "{t:#}\n{logs}"
    );
    assert_eq!(t["result"]["summary"], "The answer is 42.");
    assert!(t["result"]["cost_usd"].as_f64().unwrap() > 0.0);
    let events = c
        .get(format!(
            "{}/api/v1/tasks/{id}/events?follow=false",
            server.base
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        events.contains("event: result") && events.contains("event: system"),
        "{events}"
    );
    assert!(!anthropic.agent_requests().is_empty());
    for body in [&logs, &events, &t.to_string()] {
        assert!(!body.contains(&api_key), "the API key leaked");
    }
}

/// The original service's clients, against `POST /api/tasks`: the chat bot (202 is success),
/// and the original end-to-end test, which reads `pod_name` from the answer, then GETs that pod
/// from the Kubernetes API until it has succeeded, checking its labels on the way. Between two
/// GETs (every 2 s in the original) this test waits for the pod's next change through a watch,
/// so it never sleeps.
#[tokio::test]
async fn the_original_clients_submit_on_api_tasks_and_follow_the_pod() {
    let dir = tempfile::tempdir().unwrap();
    // Pods without a behaviour of their own run for 50 ms and exit 0. Their env references
    // the worker Secret, which must exist for the kubelet to start them.
    let sim = Sim::new(SimConfig::default());
    sim.put_secret(
        "agents",
        "claude-worker-secrets",
        &[
            ("ANTHROPIC_API_KEY", "sk-test"),
            ("GITHUB_TOKEN", "ghp-test"),
        ],
    );
    let addr = sim.serve_tcp().await.unwrap();
    let api = format!("http://{addr}");
    let kubeconfig = dir.path().join("kubeconfig");
    ao_kube_sim::write_kubeconfig(&kubeconfig, addr, "agents").unwrap();
    let server = start(dir.path(), &kubeconfig);
    let c = common::client();
    let submit = || {
        c.post(format!("{}/api/tasks", server.base))
            .json(&json!({"task": "Say hello"}))
            .send()
    };

    // The chat bot.
    let r = submit().await.unwrap();
    assert_eq!(r.status(), 202);

    // The original e2e test.
    let r = submit().await.unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "accepted", "{body}");
    let id = body["id"].as_str().unwrap();
    let pod_name = body["pod_name"].as_str().expect("pod_name").to_string();
    assert_eq!(pod_name, format!("claude-worker-{id}"));
    assert_eq!(location, format!("/api/v1/tasks/{id}"));
    let task = server.task(&c, id).await;
    assert_eq!(task["pod_name"], pod_name.as_str(), "{task:#}");

    let mut gets = 0;
    let pod = loop {
        gets += 1;
        assert!(gets < 100, "pod {pod_name} never succeeded");
        let r = c
            .get(format!("{api}/api/v1/namespaces/agents/pods/{pod_name}"))
            .send()
            .await
            .unwrap();
        if r.status() == 404 {
            next_pod_change(&c, &api, &pod_name, None).await;
            continue;
        }
        assert_eq!(r.status(), 200);
        let pod: Value = r.json().await.unwrap();
        let labels = &pod["metadata"]["labels"];
        assert_eq!(labels["app"], "claude-worker", "{pod:#}");
        assert_eq!(
            labels["app.kubernetes.io/managed-by"], "agent-orchestrator",
            "{pod:#}"
        );
        if pod["status"]["phase"] == "Succeeded" {
            break pod;
        }
        assert_ne!(pod["status"]["phase"], "Failed", "{pod:#}");
        let version = pod["metadata"]["resourceVersion"].as_str();
        next_pod_change(&c, &api, &pod_name, version).await;
    };
    assert_eq!(pod["metadata"]["name"], pod_name.as_str());
}

/// Wait (bounded) for the pod's next change after `version`, or for it to exist, through a
/// Kubernetes watch.
async fn next_pod_change(c: &reqwest::Client, api: &str, name: &str, version: Option<&str>) {
    let mut url = format!(
        "{api}/api/v1/namespaces/agents/pods?watch=true&timeoutSeconds=30&fieldSelector=metadata.name%3D{name}"
    );
    if let Some(v) = version {
        url.push_str(&format!("&resourceVersion={v}"));
    }
    let mut watch = c.get(url).send().await.unwrap();
    assert_eq!(watch.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(30), watch.chunk())
        .await
        .expect("no pod change within 30 s")
        .unwrap();
    assert!(first.is_some(), "the watch ended without an event");
}
