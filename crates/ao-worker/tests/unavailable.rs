//! A worker whose agent cannot start ends `agent_unavailable`, with the fix in its error, before
//! it clones anything or calls the API; `agent_error` stays for the agent's own failures.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use ao_testkit::Script;
use ao_worker::Outcome;
use common::World;

async fn run_with(bin: PathBuf) -> (World, ao_worker::RunReport) {
    let w = World::new(Script::new()).await;
    let mut cfg = w.config(w.spec("Do something", true));
    cfg.claude_bin = bin;
    let report = ao_worker::run(cfg).await.unwrap();
    (w, report)
}

fn assert_unavailable(w: &World, report: &ao_worker::RunReport, says: &str) {
    assert_eq!(
        report.outcome,
        Outcome::AgentUnavailable,
        "{:?}",
        report.result
    );
    assert_eq!(report.exit_code(), 1);
    let error = report.result.error.as_deref().unwrap_or_default();
    assert!(error.contains(says), "{error}");
    assert!(
        error.contains("scripts/install-claude.sh"),
        "no fix in: {error}"
    );
    assert_eq!(w.callback.result().unwrap()["outcome"], "agent_unavailable");
    assert!(w.anthropic.requests().is_empty(), "the API was called");
    assert!(!w.workspace.path().join("repo").exists(), "cloned anyway");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_binary_is_agent_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let (w, report) = run_with(dir.path().join("claude")).await;
    assert_unavailable(&w, &report, "not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_that_is_not_executable_is_agent_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("claude");
    std::fs::copy(ao_testkit::claude_bin(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (w, report) = run_with(bin).await;
    assert_unavailable(&w, &report, "not an executable file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_version_is_agent_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let bin = common_script(&dir, "echo '0.9.1 (Claude Code)'");
    let (w, report) = run_with(bin).await;
    assert_unavailable(&w, &report, "version 0.9.1, not the pinned");
}

fn common_script(dir: &tempfile::TempDir, body: &str) -> PathBuf {
    let p = dir.path().join("claude");
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}
