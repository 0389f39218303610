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
    // The sources are explicit: neither a cluster nor this machine's kubeconfig files can
    // take precedence over AO_KUBECONFIG here, so the check runs everywhere.
    let none = ao_runtime_kube::ClientSources::default();
    let s = sim(SimConfig::default());
    let addr = s.serve_tcp().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kc");
    ao_kube_sim::write_kubeconfig(&path, addr, NS).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&path).unwrap());
    let mut args = cli.kube;
    args.kubeconfig_base64 = Some(b64);
    let client = ao_runtime_kube::client_from_sources(&args, &none)
        .await
        .unwrap();
    let pods: kube::Api<Pod> = kube::Api::namespaced(client, NS);
    assert!(
        pods.list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    args.kubeconfig_base64 = Some("not base64!".into());
    let Err(err) = ao_runtime_kube::client_from_sources(&args, &none).await else {
        panic!("no client without a configuration")
    };
    assert!(
        matches!(err, ao_runtime_kube::KubeError::BadKubeconfig(_)),
        "{err}"
    );
    // A kubeconfig file, when there is one, wins over AO_KUBECONFIG.
    let files = ao_runtime_kube::ClientSources {
        kubeconfig_files: vec![path.clone()],
        ..Default::default()
    };
    let client = ao_runtime_kube::client_from_sources(&args, &files)
        .await
        .unwrap();
    let pods: kube::Api<Pod> = kube::Api::namespaced(client, NS);
    assert!(pods.list(&Default::default()).await.is_ok());
    args.kubeconfig_base64 = None;
    let Err(err) = ao_runtime_kube::client_from_sources(&args, &none).await else {
        panic!("no client without a configuration")
    };
    assert!(matches!(err, ao_runtime_kube::KubeError::NoConfig), "{err}");
}
