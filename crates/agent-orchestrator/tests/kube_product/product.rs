//! The product path through real Kubernetes (proofs 4 and 5 of the issue): the orchestrator,
//! as its own ServiceAccount, creates the worker pod on the real API server; the process
//! node runs the real `agent-orchestrator worker` with the pinned Claude Code CLI against the
//! fake Anthropic API, which opens a pull request on the fake GitHub and reports through the
//! callback. And the original service's own e2e test, reproduced on `POST /api/tasks`.

use std::collections::BTreeMap;

use ao_testkit::{FakeAnthropic, FakeGitHub, Reply, Script, Turn, Usage};
use serde_json::{Value, json};

use crate::support::cluster::{Cluster, Setup};
use crate::support::orchestrator::{Opts, Orchestrator, status_reason};
use crate::support::pods::{kubectl_logs, phase, wait_pod};
use crate::support::{Remote, script_image, worker_image};

/// Seconds the agent task may take (Claude Code's start-up in a pod included).
const RUN_SECS: u64 = 180;

fn secret(prefix: &str) -> String {
    let mut buf = [0u8; 16];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").expect("urandom"),
        &mut buf,
    )
    .expect("read urandom");
    let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_worker_runs_claude_in_a_pod_and_opens_a_pull_request() {
    let (anthropic_key, github_token) = (secret("sk-ant-kube-"), secret("ghp_kube"));
    let script = Script::new()
        .api_key(anthropic_key.clone())
        .turn(
            Turn::new()
                .text("I'll create the file.")
                .tool_use(
                    "Write",
                    json!({"file_path": "{cwd}/hello.txt", "content": "hello from a pod\n"}),
                )
                .usage(Usage::new(1_000, 30)),
        )
        .turn(Turn::text_only("Created hello.txt."))
        .when_exhausted(Reply::error(500, "kube e2e script exhausted"));
    let anthropic = FakeAnthropic::start(script).await;
    let github = FakeGitHub::start(github_token.clone()).await;
    let remote = Remote::serve();
    let (image, image_dir) = worker_image().clone();
    let cluster = Cluster::new(Setup {
        prefix: "kp-agent",
        images: BTreeMap::from([(image.clone(), image_dir)]),
        secret: Some(vec![
            ("ANTHROPIC_API_KEY", anthropic_key.clone()),
            ("GITHUB_TOKEN", github_token.clone()),
        ]),
        serve_logs: true,
    })
    .await;
    let orch = Orchestrator::start(
        &cluster,
        Opts {
            image,
            args: vec![
                "--worker-anthropic-base-url".into(),
                anthropic.base_url(),
                "--k8s-pod-ttl-seconds".into(),
                "600".into(),
            ],
            env: [
                ("AO_GITHUB_API_URL", github.api_url()),
                ("AO_GITHUB_REPO", "owner/repo".into()),
                ("AO_ALLOWED_TOOLS", "Write".into()),
                ("CLAUDE_CODE_MAX_RETRIES", "0".into()),
                ("AO_LOG_FORMAT", "json".into()),
            ]
            .map(|(k, v)| (k.to_owned(), v))
            .to_vec(),
        },
    );

    let id = orch
        .submit(json!({
            "prompt": "Add a greeting file",
            "repository": {"url": remote.url(), "ref": "main"},
        }))
        .await;
    let t = orch.wait_terminal(&id, RUN_SECS).await;
    let logs = orch.logs(&id).await;
    assert_eq!(
        status_reason(&t),
        ("succeeded", "pr_opened"),
        "{t:#}\nlogs:\n{logs}\norchestrator:\n{}",
        orch.log_tail(60)
    );
    let pod = format!("claude-worker-{id}");
    assert_eq!(t["worker"]["runtime"], "kubernetes", "{t:#}");
    assert_eq!(t["worker"]["name"], pod.as_str(), "{t:#}");

    // The pull request on the fake GitHub, for the branch the pod pushed to the remote.
    let branch = format!("agent/{id}");
    let pulls = github.pulls();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    assert_eq!(
        (pulls[0].head.as_str(), pulls[0].base.as_str()),
        (branch.as_str(), "main")
    );
    assert_eq!(
        remote.repo.read_file(&branch, "hello.txt").as_deref(),
        Some("hello from a pod\n")
    );
    let r = &t["result"];
    assert_eq!(r["outcome"], "pr_opened", "{r}");
    assert_eq!(
        r["pr_url"].as_str(),
        Some(pulls[0].html_url.as_str()),
        "{r}"
    );
    assert_eq!(
        r["commit_sha"].as_str(),
        remote.repo.rev(&branch).as_deref(),
        "{r}"
    );
    assert_eq!(r["summary"], "Created hello.txt.", "{r}");
    // Claude Code in the pod talked to the fake with the key from the worker Secret.
    let agent = anthropic.agent_requests();
    assert_eq!(agent.len(), 2, "two agent turns");
    assert!(
        agent
            .iter()
            .all(|r| r.header("x-api-key") == Some(anthropic_key.as_str()))
    );

    // The events came back through the callback (the orchestrator stored them).
    let events = orch.events(&id).await;
    for e in [
        "event: system",
        "event: assistant",
        "event: result",
        "event: worker",
    ] {
        assert!(
            events.contains(e),
            "no {e:?} in the stored events:\n{events}"
        );
    }

    // `kubectl logs` (through the API server and the node's log endpoint) shows the worker's
    // JSON lines: its events (`{"event", "seq", "task_id"}`) and its JSON log lines.
    let kubectl = kubectl_logs(&cluster.ns, &pod);
    let lines: Vec<Value> = kubectl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let event_types: Vec<&str> = lines
        .iter()
        .filter(|v| v["task_id"] == id.as_str())
        .filter_map(|v| v["event"]["type"].as_str())
        .collect();
    for ty in ["worker", "system", "assistant", "result"] {
        assert!(
            event_types.contains(&ty),
            "no {ty} event in kubectl logs:\n{kubectl}"
        );
    }
    assert!(
        lines.iter().any(|v| v["message"] == "worker finished"),
        "no worker log line in kubectl logs:\n{kubectl}"
    );
    // The orchestrator stored the same lines.
    assert_eq!(logs.lines().count(), kubectl.lines().count(), "{logs}");

    // No secret value reached what the orchestrator shows, or the pod's log.
    for (name, value) in [
        ("ANTHROPIC_API_KEY", &anthropic_key),
        ("GITHUB_TOKEN", &github_token),
    ] {
        for (what, text) in [
            ("the task", t.to_string()),
            ("the events", events.clone()),
            ("the logs", logs.clone()),
            ("kubectl logs", kubectl.clone()),
        ] {
            assert!(!text.contains(value.as_str()), "{name} leaked into {what}");
        }
    }
    drop(orch);
    cluster.shutdown().await;
}

/// The original service's e2e test: `POST /api/tasks {"task"}` answers 202 with the pod's
/// name; that pod, read from the API server, carries the original labels and succeeds. The
/// test waits for the pod's changes on a watch (the original polled every 2 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_e2e_submits_on_api_tasks_and_its_pod_succeeds() {
    let (image, image_dir) = script_image().clone();
    let cluster = Cluster::new(Setup {
        prefix: "kp-orig",
        images: BTreeMap::from([(image.clone(), image_dir)]),
        secret: Some(vec![("ANTHROPIC_API_KEY", "sk-unused".into())]),
        serve_logs: true,
    })
    .await;
    let orch = Orchestrator::start(
        &cluster,
        Opts {
            image,
            args: ["--require-result", "false", "--k8s-pod-ttl-seconds", "600"]
                .map(String::from)
                .to_vec(),
            env: vec![],
        },
    );
    let (code, body) = orch
        .post("/api/tasks", Some(json!({"task": "Say hello"})))
        .await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["status"], "accepted", "{body}");
    let id = body["id"].as_str().expect("id").to_owned();
    let pod_name = body["pod_name"].as_str().expect("pod_name").to_owned();
    assert_eq!(pod_name, format!("claude-worker-{id}"));

    let pods = cluster.pods();
    let created = wait_pod(&pods, &pod_name, 60, "created", |p| p.is_some()).await;
    let done = wait_pod(&pods, &pod_name, 120, "phase Succeeded", |p| {
        matches!(phase(p), Some("Succeeded" | "Failed"))
    })
    .await;
    for pod in [&created, &done] {
        let labels = pod
            .as_ref()
            .and_then(|p| p.metadata.labels.clone())
            .unwrap_or_default();
        assert_eq!(
            labels.get("app").map(String::as_str),
            Some("claude-worker"),
            "{labels:?}"
        );
        assert_eq!(
            labels
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("agent-orchestrator"),
            "{labels:?}"
        );
    }
    assert_eq!(
        phase(done.as_ref()),
        Some("Succeeded"),
        "{:#?}",
        done.as_ref().map(|p| &p.status)
    );
    let t = orch.wait_terminal(&id, 60).await;
    assert_eq!(status_reason(&t), ("succeeded", "completed"), "{t:#}");
    assert_eq!(t["pod_name"], pod_name.as_str(), "{t:#}");
    drop(orch);
    cluster.shutdown().await;
}
