//! One test's world on the real API server: its own namespaces (the orchestrator's
//! ServiceAccount in one, the worker pods in the other, as `deploy/` lays them out), the Role
//! rendered from `deploy/rbac.yaml`, the workers' ServiceAccount and Secret, a process node,
//! an image holding the real `agent-orchestrator` and the pinned Claude Code CLI, and a fake
//! Anthropic API. Tasks park at a gate (a file the test creates), so that the test decides
//! when the pods finish: a cut or a compaction happens while they run.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use ao_kube_testenv::TestEnv;
use ao_testkit::{FakeAnthropic, Script, Turn};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::orchestrator::{self, Orchestrator};

/// What every task's agent answers in the end.
pub const ANSWER: &str = "The answer is 42.";
/// The orchestrator's ServiceAccount, as in `deploy/`.
pub const ORCHESTRATOR_SA: &str = "agent-orchestrator";
/// How long the agents of a test's tasks may take to reach the fake API (pod start, Claude
/// Code start-up) on a shared machine.
pub const AGENT_SECS: u64 = 180;

pub struct World {
    pub env: &'static TestEnv,
    /// Where the worker pods run.
    pub ns: String,
    /// Where the orchestrator's ServiceAccount lives.
    pub ctl: String,
    pub anthropic: FakeAnthropic,
    pub image: String,
    pub dir: tempfile::TempDir,
    gate: PathBuf,
    _node: ao_kube_testenv::NodeHandle,
}

impl World {
    /// A new world whose first `gated` agent turns wait for [`World::open_gate`] (later turns
    /// answer at once).
    pub async fn new(prefix: &str, gated: usize) -> World {
        let env = ao_kube_testenv::env();
        let ns = env.namespace(prefix).await;
        let ctl = env.namespace(&format!("{prefix}-ctl")).await;
        // Pods run as a non-root user on this machine: the gate's folder must be readable,
        // and outside /tmp (an emptyDir in the pod, which also hides a checkout under /tmp
        // and so the target folder).
        let dir = tempfile::Builder::new()
            .prefix("kube-watch-")
            .tempdir_in("/var/tmp")
            .expect("a temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let gate = dir.path().join("gate-open");
        let key = format!("sk-ant-watch-{}", std::process::id());
        let mut script = Script::new().api_key(key.clone());
        for _ in 0..gated {
            let cmd = format!(
                "until [ -e '{}' ]; do sleep 0.2; done; echo gate open",
                gate.display()
            );
            script = script.turn(Turn::new().tool_use(
                "Bash",
                json!({"command": cmd, "description": "Wait for the test's gate"}),
            ));
        }
        let anthropic =
            FakeAnthropic::start(script.when_exhausted(Turn::text_only(ANSWER).into())).await;
        apply(env, &setup_yaml(&ns, &ctl, &key)).await;
        // The CLI's path is a relative symlink: the image gets the file it points at.
        let claude = std::fs::canonicalize(ao_testkit::claude_bin()).expect("the Claude Code CLI");
        let bin = Path::new(orchestrator::BIN);
        let (image, _) = env.image(
            "ao-watch-worker",
            &[("agent-orchestrator", bin), ("claude", claude.as_path())],
        );
        let node = env
            .start_node(ao_kube_testenv::NodeOptions {
                namespaces: vec![ns.clone()],
                ..Default::default()
            })
            .await;
        World {
            env,
            ns,
            ctl,
            anthropic,
            image,
            dir,
            gate,
            _node: node,
        }
    }

    /// The orchestrator's user name in the audit log.
    pub fn sa_user(&self) -> String {
        format!("system:serviceaccount:{}:{ORCHESTRATOR_SA}", self.ctl)
    }

    /// Starts the orchestrator as its ServiceAccount (a TokenRequest token), talking to the
    /// API server at `server` (the environment's, an extra one, or a proxy in front of one).
    pub async fn orchestrator(&self, server: &str, max_concurrency: usize) -> Orchestrator {
        self.orchestrator_with(server, max_concurrency, &[], None)
            .await
    }

    /// [`World::orchestrator`] with more `serve` flags, on `port` if given.
    pub async fn orchestrator_with(
        &self,
        server: &str,
        max_concurrency: usize,
        extra: &[&str],
        port: Option<u16>,
    ) -> Orchestrator {
        let path = self.dir.path().join("orchestrator.kubeconfig");
        self.env
            .token_kubeconfig(&self.ctl, ORCHESTRATOR_SA, &path)
            .await;
        let text = std::fs::read_to_string(&path).unwrap();
        let from = format!("server: {}", self.env.server);
        assert!(text.contains(&from), "unexpected kubeconfig layout");
        std::fs::write(&path, text.replace(&from, &format!("server: {server}"))).unwrap();
        Orchestrator::start(&orchestrator::Opts {
            namespace: &self.ns,
            image: &self.image,
            kubeconfig: &path,
            anthropic_base_url: &self.anthropic.base_url(),
            dir: self.dir.path(),
            max_concurrency,
            extra,
            port,
        })
    }

    /// Waits until `n` agents reached the fake API: their pods run.
    pub async fn wait_for_agents(&self, n: usize) {
        let wait = self.anthropic.wait_for_agent_requests(n);
        if tokio::time::timeout(Duration::from_secs(AGENT_SECS), wait)
            .await
            .is_err()
        {
            panic!(
                "only {} of {n} agents reached the fake Anthropic API within {AGENT_SECS} s",
                self.anthropic.agent_requests().len()
            );
        }
    }

    /// Lets every parked agent go on.
    pub fn open_gate(&self) {
        std::fs::write(&self.gate, "open").unwrap();
    }
}

/// The ServiceAccounts, the workers' Secret and the Role from `deploy/rbac.yaml` with its two
/// namespaces replaced by this world's.
fn setup_yaml(ns: &str, ctl: &str, anthropic_key: &str) -> String {
    let rbac = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/rbac.yaml");
    let rbac = std::fs::read_to_string(&rbac).expect("deploy/rbac.yaml");
    assert!(
        rbac.contains("namespace: agents-control-plane") && rbac.contains("namespace: agents\n")
    );
    let rbac = rbac
        .replace(
            "namespace: agents-control-plane",
            &format!("namespace: {ctl}"),
        )
        .replace("namespace: agents\n", &format!("namespace: {ns}\n"));
    format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {ORCHESTRATOR_SA}, namespace: {ctl}}}\n---\n\
         apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: claude-worker, namespace: {ns}}}\n\
         automountServiceAccountToken: false\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: claude-worker-secrets, namespace: {ns}}}\n\
         stringData: {{ANTHROPIC_API_KEY: {anthropic_key}}}\n---\n{rbac}"
    )
}

/// `kubectl apply` as admin (the test's own setup, never the orchestrator's).
pub async fn apply(env: &TestEnv, yaml: &str) {
    kubectl(
        env,
        &env.admin_kubeconfig,
        &["apply", "-f", "-"],
        Some(yaml),
    )
    .await;
}

/// Runs kubectl with `kubeconfig`; panics with its output when it fails. Returns stdout.
pub async fn kubectl(
    env: &TestEnv,
    kubeconfig: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> String {
    let _ = env;
    let mut child = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl (at /usr/bin/kubectl on these machines)");
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .await
        .unwrap();
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish within 60 s"))
        .expect("kubectl output");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl delete --wait=false` as admin, from a `Drop` (so a failed test cleans up too);
/// a failure is only reported: the test's verdict is already made.
pub fn delete_on_drop(env: &TestEnv, args: &[&str]) {
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&env.admin_kubeconfig)
        .arg("delete")
        .args(args)
        .args(["--wait=false", "--ignore-not-found"])
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => eprintln!("cleanup {args:?}: {}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => eprintln!("cleanup {args:?}: {e}"),
    }
}

impl Drop for World {
    /// Deletes the test's namespaces (without waiting), pass or fail.
    fn drop(&mut self) {
        delete_on_drop(self.env, &["namespace", &self.ns, &self.ctl]);
    }
}
