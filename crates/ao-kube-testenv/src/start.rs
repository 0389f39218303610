//! Runs `scripts/kube-testenv.sh start` (which reuses a running environment, under a file lock)
//! and reads the environment's variables from `run/env`. Blocking on purpose: it uses
//! `std::process`, so it works from sync tests and from inside any tokio runtime alike.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::TestEnv;

/// The repository root (this crate is `crates/ao-kube-testenv`).
pub(crate) fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::canonicalize(&root).unwrap_or(root)
}

pub(crate) fn script() -> PathBuf {
    repo_root().join("scripts/kube-testenv.sh")
}

/// `AO_TESTENV_DIR`, else `<repo>/.testenv` (the script's default).
pub(crate) fn testenv_dir() -> PathBuf {
    match std::env::var_os("AO_TESTENV_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo_root().join(".testenv"),
    }
}

/// How to run the script by hand, for panic messages.
pub(crate) fn by_hand(cmd: &str) -> String {
    format!(
        "AO_TESTENV_DIR={} bash {} {cmd}",
        testenv_dir().display(),
        script().display()
    )
}

pub(crate) fn run_script(args: &[&str]) -> Result<String, String> {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .env("AO_TESTENV_DIR", testenv_dir())
        .output()
        .map_err(|e| format!("could not run bash {}: {e}", script().display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "`{}` failed ({}).\n--- stdout\n{stdout}\n--- stderr\n{}",
            by_hand(&args.join(" ")),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

pub(crate) fn start_or_attach() -> TestEnv {
    if let Err(report) = run_script(&["start"]) {
        panic!(
            "ao-kube-testenv: the Kubernetes test environment did not start.\n{report}\n\
             Build the binaries once with `{}` (needs Go), then run `{}` by hand to see why.",
            by_hand("build"),
            by_hand("start")
        );
    }
    let run = testenv_dir().join("run");
    let env_file = run.join("env");
    let text = std::fs::read_to_string(&env_file).unwrap_or_else(|e| {
        panic!(
            "ao-kube-testenv: `start` succeeded but {} is unreadable: {e}; run `{}` by hand",
            env_file.display(),
            by_hand("start")
        )
    });
    let vars: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
    let var = |key: &str| -> String {
        vars.get(key)
            .map(|v| v.to_string())
            .unwrap_or_else(|| panic!("ao-kube-testenv: {} has no {key}=", env_file.display()))
    };
    TestEnv {
        dir: std::fs::canonicalize(&run).unwrap_or(run),
        server: var("AO_KUBE_SERVER"),
        admin_kubeconfig: var("AO_KUBE_ADMIN_KUBECONFIG").into(),
        audit_log: var("AO_KUBE_AUDIT_LOG").into(),
        etcd: var("AO_KUBE_ETCD"),
        pki: var("AO_KUBE_PKI").into(),
    }
}
