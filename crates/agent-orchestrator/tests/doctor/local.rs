//! The checks of this machine, each failing on purpose.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ao_testkit::FakeGitHub;

use crate::{Run, base_env, doctor, vars};

const KEY: &str = "sk-ant-doctor-7f3a9c2e51";
const TOKEN: &str = "ghp_doctor_b81d44e0c7";

/// Everything a working machine has: the pinned Claude Code, a key, a token GitHub accepts.
fn good_env(home: &Path, github: &FakeGitHub) -> Vec<(String, OsString)> {
    let mut env = base_env(home);
    env.extend(vars(&[
        ("AO_CLAUDE_BIN", &ao_testkit::claude_bin()),
        ("ANTHROPIC_API_KEY", &KEY),
        ("GITHUB_TOKEN", &TOKEN),
        ("AO_GITHUB_API_URL", &github.api_url()),
    ]));
    env
}

fn set(env: &mut Vec<(String, OsString)>, name: &str, value: impl Into<OsString>) {
    env.retain(|(k, _)| k != name);
    env.push((name.into(), value.into()));
}

fn unset(env: &mut Vec<(String, OsString)>, name: &str) {
    env.retain(|(k, _)| k != name);
}

fn data_arg(dir: &Path) -> String {
    dir.join("data").to_string_lossy().into_owned()
}

fn run(dir: &Path, env: &[(String, OsString)], extra: &[&str]) -> Run {
    let data = data_arg(dir);
    let args: Vec<&str> = ["--data-dir", data.as_str()]
        .into_iter()
        .chain(extra.iter().copied())
        .collect();
    doctor(&args, env)
}

fn script(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_machine_exits_zero_and_prints_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGitHub::start(TOKEN).await;
    let r = run(dir.path(), &good_env(dir.path(), &github), &[]);
    assert_eq!(r.code, 0, "{}", r.out);
    r.assert("claude_code", "[ok]", "Claude Code 2.1.190 (pinned)", "");
    r.assert("anthropic_api", "[ok]", "ANTHROPIC_API_KEY is set", "");
    r.assert("git", "[ok]", "git version", "");
    r.assert("github", "[ok]", "accepts it", "");
    r.assert("data_dir", "[ok]", "serve creates it (mode 0700)", "");
    r.assert("callback_url", "[ok]", "listen address", "");
    assert!(r.out.ends_with("tasks can run\n"), "{}", r.out);
    assert!(!r.out.contains(KEY) && !r.out.contains(TOKEN), "{}", r.out);
    assert!(!github.requests().is_empty(), "GitHub was not asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_missing_or_wrong_blocks_with_the_install_fix() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGitHub::start(TOKEN).await;
    let mut env = good_env(dir.path(), &github);
    let fix = "run `scripts/install-claude.sh`";
    let cases = [
        (
            dir.path().join("nowhere/claude"),
            "Claude Code not found at",
        ),
        (
            script(dir.path(), "plain", "exit 0", 0o644),
            "is not an executable file",
        ),
        (
            script(dir.path(), "old", "echo '2.0.1 (Claude Code)'", 0o755),
            "is version 2.0.1, not the pinned 2.1.190",
        ),
    ];
    for (bin, says) in cases {
        set(&mut env, "AO_CLAUDE_BIN", &bin);
        let r = run(dir.path(), &env, &[]);
        assert_eq!(r.code, 1, "{}", r.out);
        r.assert("claude_code", "[FAIL]", says, fix);
        assert!(
            r.out.ends_with("fix them and run doctor again\n"),
            "{}",
            r.out
        );
    }
    // Without AO_CLAUDE_BIN, `claude` is found on PATH.
    unset(&mut env, "AO_CLAUDE_BIN");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(ao_testkit::claude_bin(), bin.join("claude")).unwrap();
    set(&mut env, "PATH", format!("{}:/usr/bin:/bin", bin.display()));
    let r = run(dir.path(), &env, &[]);
    assert_eq!(r.code, 0, "{}", r.out);
    r.assert("claude_code", "[ok]", "from PATH", "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_api_key_blocks_and_a_base_url_is_enough() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGitHub::start(TOKEN).await;
    let mut env = good_env(dir.path(), &github);
    unset(&mut env, "ANTHROPIC_API_KEY");
    let r = run(dir.path(), &env, &[]);
    assert_eq!(r.code, 1, "{}", r.out);
    r.assert(
        "anthropic_api",
        "[FAIL]",
        "neither ANTHROPIC_API_KEY nor ANTHROPIC_BASE_URL is set",
        "export ANTHROPIC_API_KEY=<your key>",
    );
    set(&mut env, "ANTHROPIC_BASE_URL", "http://127.0.0.1:9");
    let r = run(dir.path(), &env, &[]);
    assert_eq!(r.code, 0, "{}", r.out);
    r.assert("anthropic_api", "[ok]", "ANTHROPIC_BASE_URL is set", "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_git_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGitHub::start(TOKEN).await;
    let mut env = good_env(dir.path(), &github);
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    set(&mut env, "PATH", &empty);
    let r = run(dir.path(), &env, &[]);
    assert_eq!(r.code, 1, "{}", r.out);
    r.assert("git", "[FAIL]", "git not found on PATH", "install git");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_problems_only_warn() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGitHub::start(TOKEN).await;
    let mut env = good_env(dir.path(), &github);
    set(&mut env, "GITHUB_TOKEN", "ghp_not_the_right_one_42");
    let r = run(dir.path(), &env, &[]);
    assert_eq!(r.code, 0, "{}", r.out);
    r.assert(
        "github",
        "[warn]",
        "refuses GITHUB_TOKEN (401)",
        "make a new token",
    );
    assert!(
        r.out.ends_with("tasks can run; 1 warning(s)\n"),
        "{}",
        r.out
    );
    set(&mut env, "AO_GITHUB_API_URL", "http://127.0.0.1:9");
    let r = run(dir.path(), &env, &[]);
    r.assert("github", "[warn]", "does not answer", "AO_GITHUB_API_URL");
    unset(&mut env, "GITHUB_TOKEN");
    let r = run(dir.path(), &env, &[]);
    assert_eq!(r.code, 0, "{}", r.out);
    r.assert(
        "github",
        "[warn]",
        "GITHUB_TOKEN is not set",
        "export GITHUB_TOKEN=",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_data_dir_blocks_and_a_wide_one_of_ours_warns() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGitHub::start(TOKEN).await;
    let env = good_env(dir.path(), &github);
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = run(dir.path(), &env, &[]);
    assert_eq!(r.code, 0, "{}", r.out);
    r.assert(
        "data_dir",
        "[warn]",
        "has mode 0755; serve makes it 0700",
        "chmod 700",
    );
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let r = run(dir.path(), &env, &[]);
    assert_eq!(r.code, 1, "{}", r.out);
    r.assert(
        "data_dir",
        "[FAIL]",
        "(mode 1777) is shared",
        "use a private --data-dir",
    );
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let r = run(dir.path(), &env, &[]);
    r.assert("data_dir", "[ok]", "writable and private (mode 0700)", "");
    std::fs::remove_dir(&data).unwrap();
    std::fs::write(&data, "").unwrap();
    let r = run(dir.path(), &env, &[]);
    assert_eq!(r.code, 1, "{}", r.out);
    r.assert(
        "data_dir",
        "[FAIL]",
        "is not a directory",
        "choose another --data-dir",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_worker_user_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGitHub::start(TOKEN).await;
    let env = good_env(dir.path(), &github);
    let r = run(dir.path(), &env, &["--worker-user", "root"]);
    assert_eq!(r.code, 1, "{}", r.out);
    r.assert(
        "worker_user",
        "[FAIL]",
        "must not be root",
        "--worker-user nobody",
    );
    let r = run(dir.path(), &env, &["--worker-user", "no-such-user-ao"]);
    assert_eq!(r.code, 1, "{}", r.out);
    r.assert(
        "worker_user",
        "[FAIL]",
        "no such user `no-such-user-ao`",
        "useradd",
    );
    assert!(!run(dir.path(), &env, &[]).has("worker_user"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_url_that_does_not_answer_warns() {
    let dir = tempfile::tempdir().unwrap();
    let github = FakeGitHub::start(TOKEN).await;
    let env = good_env(dir.path(), &github);
    let r = run(dir.path(), &env, &["--callback-url", "http://127.0.0.1:9"]);
    assert_eq!(r.code, 0, "{}", r.out);
    r.assert(
        "callback_url",
        "[warn]",
        "http://127.0.0.1:9 does not answer",
        "start the server",
    );
}

#[test]
fn a_custom_worker_command_skips_the_claude_checks() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(
        dir.path(),
        &base_env(dir.path()),
        &["--worker-command", "/bin/true"],
    );
    assert_eq!(r.code, 0, "{}", r.out);
    for name in ["claude_code", "anthropic_api", "git", "github"] {
        assert!(
            !r.has(name),
            "{name} checked for a custom worker:\n{}",
            r.out
        );
    }
    assert!(
        r.out.starts_with(
            "agent-orchestrator doctor: runtime local, the worker command /bin/true\n"
        ),
        "{}",
        r.out
    );
}

#[test]
fn doctor_reads_serves_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ao.toml");
    std::fs::write(&cfg, "worker-command = \"/bin/true\"\n").unwrap();
    let r = run(
        dir.path(),
        &base_env(dir.path()),
        &["--config", cfg.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(!r.has("claude_code"), "{}", r.out);
    assert!(r.out.contains("the worker command /bin/true"), "{}", r.out);
}
