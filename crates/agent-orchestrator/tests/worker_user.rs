//! `--worker-user nobody` as the README advises for root.
//!
//! - A repository task, run by the real Claude Code CLI against `FakeAnthropic`, clones over
//!   smart HTTP with the token (`GitHttp`, as with github.com), commits and pushes as `nobody`
//!   and ends `pr_opened` on `FakeGitHub`; its task folder, workspace and HOME are `nobody`'s.
//! - The failure users met, a local-path remote of root's, ends `clone_failed` saying why.
//! - `serve` refuses, before listening, a worker user that could not run a task.
//!
//! Changing user needs root. CI runs as root; anywhere else the first two fail with a message
//! saying so (they never skip). They need the pinned Claude Code CLI like the other e2e tests.

mod e2e;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use ao_testkit::git::BareRepo;
use ao_testkit::{FakeAnthropic, FakeGitHub, GitHttp, Reply, Script, Turn};
use e2e::{Opts, Secrets, Server};
use serde_json::{Value, json};

const RUN_SECS: u64 = 120;

/// What the agent runs to show whose it is, its HOME and its checkout.
const WHO_AM_I: &str = "id -un; test -O ../.. && echo task-folder-is-mine; test -O .. && echo workspace-is-mine; \
     test -O \"$HOME\" && echo home-is-mine; test -O . && echo checkout-is-mine";

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test runs workers as `nobody` (--worker-user), which needs root: run it as root (CI does)"
    );
}

fn owner(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .uid()
}

/// The text of every tool result Claude Code sent back to the API.
fn tool_results(anthropic: &FakeAnthropic) -> String {
    let mut out = String::new();
    for r in anthropic.agent_requests() {
        let Some(body) = &r.body else { continue };
        for m in body["messages"].as_array().into_iter().flatten() {
            for b in m["content"].as_array().into_iter().flatten() {
                if b["type"] == "tool_result" {
                    out.push_str(&b["content"].to_string());
                    out.push('\n');
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_task_as_nobody_opens_a_pull_request() {
    require_root();
    let nobody = ao_runtime_local::resolve_worker_user("nobody").expect("the user nobody");
    let script = Script::new()
        .turn(Turn::new().tool_use(
            "Bash",
            json!({"command": WHO_AM_I, "description": "Who am I"}),
        ))
        .turn(Turn::new().tool_use(
            "Write",
            json!({"file_path": "{cwd}/hello.txt", "content": "hello from nobody\n"}),
        ))
        .turn(Turn::text_only("Created hello.txt."))
        .when_exhausted(Reply::error(500, "script exhausted"));
    let secrets = Secrets::new();
    let anthropic = FakeAnthropic::start(script.api_key(secrets.anthropic_key.clone())).await;
    let github = FakeGitHub::start(secrets.github_token.clone()).await;
    let bare = BareRepo::create();
    // Over the network with the token, as with github.com.
    let remote = GitHttp::serve(&bare, e2e::GITHUB_REPO, &secrets.github_token).await;
    let s = Server::start(
        &anthropic,
        &github,
        &secrets,
        Opts {
            allowed_tools: "Write,Bash(id:*),Bash(test:*),Bash(echo:*)",
            max_concurrency: 1,
            worker_user: Some("nobody"),
        },
    );
    let id = s
        .submit(
            json!({"prompt": "Add a greeting", "repository": {"url": remote.url(), "ref": "main"}}),
        )
        .await;
    let t: Value = s.wait_terminal(&id, RUN_SECS).await;
    assert_eq!(
        (t["status"].as_str(), t["reason"].as_str()),
        (Some("succeeded"), Some("pr_opened")),
        "{t:#}\nlogs:\n{}",
        s.logs(&id).await
    );
    let branch = format!("agent/{id}");
    assert_eq!(
        bare.read_file(&branch, "hello.txt").as_deref(),
        Some("hello from nobody\n")
    );
    let git = remote.requests();
    assert!(
        git.iter().all(|r| r.authorized)
            && git.iter().any(|r| r.path.ends_with("/git-receive-pack")),
        "{git:#?}"
    );
    let pulls = github.pulls();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    assert_eq!(pulls[0].head, branch);

    // While it ran, the agent was nobody, in a HOME and a checkout of nobody's.
    let seen = tool_results(&anthropic);
    assert!(
        seen.contains(
            "nobody\\ntask-folder-is-mine\\nworkspace-is-mine\\nhome-is-mine\\ncheckout-is-mine"
        ),
        "the agent's answers:\n{seen}"
    );
    let repo = s.task_dir(&id).join("workspace/repo");
    // git cloned and committed as nobody: the checkout and the commit's ref are nobody's.
    for p in [
        s.task_dir(&id).join("workspace"),
        repo.clone(),
        repo.join(".git"),
        repo.join(".git/refs/heads").join(&branch),
        repo.join("hello.txt"),
    ] {
        assert_eq!(owner(&p), nobody.uid, "{}", p.display());
    }
    // Finished: the task folder is the orchestrator's again, closed to later workers.
    assert_eq!(owner(&s.task_dir(&id)), 0);
    s.assert_no_secret_leaks().await;
}

/// The failure users met: a local-path remote of root's. git, running as `nobody`, refuses it
/// ("dubious ownership"), and the task says why and what to do instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_remote_of_another_user_fails_saying_why() {
    require_root();
    let secrets = Secrets::new();
    let script = Script::new().when_exhausted(Reply::error(500, "the agent must not run"));
    let anthropic = FakeAnthropic::start(script.api_key(secrets.anthropic_key.clone())).await;
    let github = FakeGitHub::start(secrets.github_token.clone()).await;
    let bare = BareRepo::create();
    let s = Server::start(
        &anthropic,
        &github,
        &secrets,
        Opts {
            allowed_tools: "Write",
            max_concurrency: 1,
            worker_user: Some("nobody"),
        },
    );
    let id = s
        .submit(json!({"prompt": "p", "repository": {"url": bare.url(), "ref": "main"}}))
        .await;
    let t: Value = s.wait_terminal(&id, RUN_SECS).await;
    assert_eq!(
        (t["status"].as_str(), t["reason"].as_str()),
        (Some("failed"), Some("clone_failed")),
        "{t:#}"
    );
    let error = t["result"]["error"].as_str().unwrap_or_default();
    for want in [
        bare.url().as_str(),
        "belongs to another user",
        "Serve it over the network",
    ] {
        assert!(error.contains(want), "{want:?} not in {error:?}");
    }
    assert!(anthropic.agent_requests().is_empty());
}

/// `serve` refuses a worker user that could not run a task, before listening, saying what is in
/// the way and how to fix it (no root needed: nothing runs as the user).
#[test]
fn serve_refuses_a_worker_user_that_cannot_work() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Like a checkout under /root: private to its owner.
    let private = dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let serve = |user: &str, data: &Path| {
        let mut child = std::process::Command::new(e2e::BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--worker-user", user])
            .arg("--data-dir")
            .arg(data)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Bounded: a server that accepted the user would serve forever.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("serve --worker-user {user} started instead of refusing");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    // A uid that is not this test's, whoever runs it.
    let err = serve("54321", &private.join("data"));
    for want in [
        format!("cannot pass through {}", private.display()),
        "mode 700".into(),
        "--data-dir".into(),
    ] {
        assert!(err.contains(&want), "{want:?} not in {err}");
    }
    let open = dir.path().join("open/data");
    assert!(serve("root", &open).contains("must not be root"));
    assert!(serve("0", &open).contains("must not be root"));
    let err = serve("no-such-user-ao", &open);
    assert!(
        err.contains("no such user `no-such-user-ao`") && err.contains("useradd"),
        "{err}"
    );
}
