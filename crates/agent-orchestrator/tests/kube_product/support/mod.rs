//! What the product tests share: the test's slice of the cluster ([`cluster`]), the
//! orchestrator process ([`orchestrator`]), waits on pods through watches ([`pods`]), the
//! two worker images, folders worker pods can reach, and a git remote they can push to.
//!
//! Worker pods run as uid 10001 in a private mount namespace whose `/tmp`, `/workspace` and
//! `/home/agent` are fresh emptyDirs and whose root filesystem is read-only: what they read
//! lives in world-readable folders next to the env's images (never under `/tmp` or `/root`),
//! what they write goes over loopback (the git daemon, the fakes, the callback).

#![allow(dead_code)]

pub mod cluster;
pub mod orchestrator;
pub mod pods;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use ao_kube_testenv::env;

/// The real worker image: `agent-orchestrator` (run as `agent-orchestrator worker`) and the
/// pinned Claude Code CLI as `claude` on its PATH. Built once per test process.
pub fn worker_image() -> &'static (String, PathBuf) {
    static IMAGE: OnceLock<(String, PathBuf)> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let claude = claude_bin();
        env().image(
            "worker",
            &[
                ("agent-orchestrator", Path::new(orchestrator::BIN)),
                ("claude", claude.as_path()),
            ],
        )
    })
}

/// The pinned Claude Code CLI from `AO_CLAUDE_BIN`, resolved (the env copies the file).
fn claude_bin() -> PathBuf {
    let bin = std::env::var_os("AO_CLAUDE_BIN")
        .filter(|v| !v.is_empty())
        .expect(
            "AO_CLAUDE_BIN is not set: the product path runs the pinned Claude Code CLI in a pod \
         (scripts/install-claude.sh, then AO_CLAUDE_BIN=<path to claude>)",
        );
    std::fs::canonicalize(&bin)
        .unwrap_or_else(|e| panic!("AO_CLAUDE_BIN={}: {e}", Path::new(&bin).display()))
}

/// What the script worker does, chosen per task through its env (`KP_MODE`):
/// - `exit` (default): print two lines, exit `$KP_EXIT`;
/// - `hold`: print, then wait until the file `$KP_RELEASE` exists (forever when unset),
///   saying so and exiting 143 on SIGTERM;
/// - `alloc`: hold ~512 MiB (a line with no end kept by `tail`) until killed.
const SCRIPT_WORKER: &str = r#"#!/bin/sh
PATH="$PATH:/usr/local/bin:/usr/bin:/bin"
echo "script worker $AO_TASK_ID starts"
case "${KP_MODE:-exit}" in
  hold)
    trap 'echo "script worker got SIGTERM"; exit 143' TERM
    echo "holding"
    while [ ! -e "${KP_RELEASE:-/nonexistent/kp-release}" ]; do sleep 0.2; done ;;
  alloc)
    echo "allocating"
    head -c 512M /dev/zero | tail | sleep 600 ;;
esac
echo "script worker $AO_TASK_ID ends"
exit "${KP_EXIT:-0}"
"#;

/// An image whose `agent-orchestrator` is [`SCRIPT_WORKER`], for the failure paths that need
/// no agent. Built once per test process.
pub fn script_image() -> &'static (String, PathBuf) {
    static IMAGE: OnceLock<(String, PathBuf)> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kube-product");
        std::fs::create_dir_all(&dir).expect("script dir");
        let path = dir.join(format!("script-worker-{}", std::process::id()));
        std::fs::write(&path, SCRIPT_WORKER).expect("write the script worker");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        env().image("script-worker", &[("agent-orchestrator", path.as_path())])
    })
}

/// A fresh folder every worker pod may read (its root filesystem is read-only), in
/// `/var/tmp`: never under `/tmp`, which a pod's emptyDir hides, as it hides a checkout (and so
/// the env's folder) that lives there.
pub fn shared_dir(prefix: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let base = Path::new("/var/tmp").join("ao-kube-product");
    std::fs::create_dir_all(&base).expect("scratch base");
    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = base.join(format!("{prefix}-{}-{n}-{nanos:x}", std::process::id()));
    std::fs::create_dir(&dir).expect("scratch dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir
}

/// A bare repository (`ao_testkit::git::BareRepo`) served read-write by `git daemon` on
/// loopback: the pod's root filesystem is read-only (`readOnlyRootFilesystem`), so, as in
/// production, it reaches its remote over the network, never through a host path.
pub struct Remote {
    pub repo: ao_testkit::git::BareRepo,
    daemon: std::process::Child,
    port: u16,
}

impl Remote {
    pub fn serve() -> Remote {
        let repo = ao_testkit::git::BareRepo::create();
        let base = repo.path().parent().expect("the repo's folder").to_owned();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        // git-daemon itself (not `git daemon`, whose child would outlive a kill).
        let exec_path = Command::new("git")
            .arg("--exec-path")
            .output()
            .expect("git --exec-path");
        let exec_path = String::from_utf8_lossy(&exec_path.stdout).trim().to_owned();
        let daemon = Command::new(Path::new(&exec_path).join("git-daemon"))
            .args(["--reuseaddr", "--export-all", "--enable=receive-pack"])
            .args(["--listen=127.0.0.1", &format!("--port={port}")])
            .arg(format!("--base-path={}", base.display()))
            .arg(&base)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", &base)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start git-daemon");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "git daemon never listened on {port}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Remote { repo, daemon, port }
    }

    pub fn url(&self) -> String {
        format!("git://127.0.0.1:{}/remote.git", self.port)
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

/// Knobs of [`script_world`].
pub struct ScriptWorld<'a> {
    pub prefix: &'a str,
    /// Create the worker Secret.
    pub secret: bool,
    pub serve_logs: bool,
    /// `--worker-image` when not the script image (one the node does not have).
    pub image: Option<&'a str>,
    /// Extra `serve` arguments.
    pub args: &'a [&'a str],
}

/// A slice of the cluster whose node has the script image, and an orchestrator over it that
/// does not require a worker result (the script reports none) and keeps finished pods.
pub async fn script_world(w: ScriptWorld<'_>) -> (cluster::Cluster, orchestrator::Orchestrator) {
    let (image, dir) = script_image().clone();
    let cluster = cluster::Cluster::new(cluster::Setup {
        prefix: w.prefix,
        images: std::collections::BTreeMap::from([(image.clone(), dir)]),
        secret: w
            .secret
            .then(|| vec![("ANTHROPIC_API_KEY", "sk-unused-by-the-script".to_owned())]),
        serve_logs: w.serve_logs,
    })
    .await;
    let mut args: Vec<String> = ["--require-result", "false", "--k8s-pod-ttl-seconds", "600"]
        .map(String::from)
        .to_vec();
    args.extend(w.args.iter().map(|a| a.to_string()));
    let orch = orchestrator::Orchestrator::start(
        &cluster,
        orchestrator::Opts {
            image: w.image.map_or(image, str::to_owned),
            args,
            env: vec![],
        },
    );
    (cluster, orch)
}

/// Poll the task's stored log (the task API) until it contains `needle`; panics after `secs`.
pub async fn wait_logged(orch: &orchestrator::Orchestrator, id: &str, needle: &str, secs: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let logs = orch.logs(id).await;
        if logs.contains(needle) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "task {id} never logged {needle:?} within {secs} s: {logs}\ntask: {:#}\norchestrator:\n{}",
            orch.task(id).await,
            orch.log_tail(40)
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
