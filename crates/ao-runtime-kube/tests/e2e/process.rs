//! The simulator running the container command as a local process (how the binary's
//! end-to-end tests run the real worker "in Kubernetes"), and the client configuration path
//! through a base64 kubeconfig.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use ao_core::lifecycle::TaskStatus;
use ao_kube_sim::{Behaviour, SimConfig};
use base64::Engine;
use clap::Parser;
use k8s_openapi::api::core::v1::Pod;

use crate::common::*;

const WORKER: &str = r#"#!/bin/sh
echo "task=$AO_TASK_ID"
echo "args=$*"
echo "callback=$AO_CALLBACK_URL token_len=${#AO_CALLBACK_TOKEN} key_len=${#ANTHROPIC_API_KEY} gh_len=${#GITHUB_TOKEN}"
test -d "$AO_WORKSPACE" && test -d "$HOME" && echo "dirs ok"
case "$AO_TASK_SPEC" in *'"prompt":"run me"'*) echo "spec ok";; esac
echo "to stderr" >&2
exit 7
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_container_command_runs_as_a_local_process_with_resolved_env() {
    let dir = tempfile::tempdir().unwrap();
    let worker = dir.path().join("worker.sh");
    std::fs::write(&worker, WORKER).unwrap();
    std::fs::set_permissions(&worker, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = SimConfig {
        default_behaviour: Behaviour::Process,
        programs: HashMap::from([("agent-orchestrator".to_string(), worker)]),
        ..SimConfig::default()
    };
    let mut e = env_with(cfg, sched_config()).await;
    let id = submit(&e.store, spec("run me")).await;
    let t = run_to_end(&mut e.sched, &e.store, id, Duration::from_secs(15)).await;
    assert_eq!(
        (t.status, t.reason.to_string().as_str()),
        (TaskStatus::Failed, "exit_code_7")
    );
    let logs = log_lines(&e.store, id).await;
    let expected = [
        format!("task={id}"),
        "args=worker".to_string(),
        format!(
            "callback=http://orchestrator.agents.svc:8080 token_len=64 key_len={} gh_len={}",
            API_KEY.len(),
            GH_TOKEN.len()
        ),
        "dirs ok".to_string(),
        "spec ok".to_string(),
    ];
    for l in expected {
        assert!(logs.contains(&l), "missing {l:?} in {logs:?}");
    }
    assert!(logs.contains(&"to stderr".to_string()));
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    kube: ao_runtime_kube::KubeArgs,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_default_and_a_base64_kubeconfig_reaches_the_api() {
    init_tracing();
    let cli = Cli::try_parse_from(["serve", "--worker-image", "img:1"]).unwrap();
    let cfg = cli.kube.clone().into_config();
    assert_eq!(cfg.namespace, "agents");
    assert_eq!(cfg.service_account, "claude-worker");
    assert_eq!(cfg.secret_name, "claude-worker-secrets");
    assert_eq!(cfg.run_as_user, 10001);
    assert_eq!(cfg.command, ["agent-orchestrator", "worker"]);
    assert_eq!(cfg.image, "img:1");
    let in_cluster = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    let home_cfg = std::env::var_os("HOME")
        .is_some_and(|h| std::path::Path::new(&h).join(".kube/config").exists());
    if in_cluster || home_cfg || std::env::var_os("KUBECONFIG").is_some() {
        eprintln!("skipping the AO_KUBECONFIG check: another configuration takes precedence here");
        return;
    }
    let s = sim(SimConfig::default());
    let addr = s.serve_tcp().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kc");
    ao_kube_sim::write_kubeconfig(&path, addr, NS).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&path).unwrap());
    let mut args = cli.kube;
    args.kubeconfig_base64 = Some(b64);
    let client = ao_runtime_kube::client_from_config(&args).await.unwrap();
    let pods: kube::Api<Pod> = kube::Api::namespaced(client, NS);
    assert!(
        pods.list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    args.kubeconfig_base64 = Some("not base64!".into());
    assert!(ao_runtime_kube::client_from_config(&args).await.is_err());
}
