//! `GitHttp` speaks git's smart HTTP protocol with GitHub's token check: the real `git` CLI
//! clones and pushes with the right token, and is turned away without it.

use std::path::Path;
use std::process::{Command, Output};

use ao_testkit::GitHttp;
use ao_testkit::git::{BareRepo, isolated_git_env};

/// `git` with an `Authorization` header for `token` (as the worker sends it), or none.
fn git(home: &Path, cwd: &Path, token: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new("git");
    c.current_dir(cwd).envs(isolated_git_env(home));
    if let Some(t) = token {
        let basic = base64(format!("x-access-token:{t}").as_bytes());
        c.env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env(
                "GIT_CONFIG_VALUE_0",
                format!("Authorization: Basic {basic}"),
            );
    }
    c.args(args).output().expect("run git")
}

fn base64(data: &[u8]) -> String {
    let out = Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(data)?;
            c.wait_with_output()
        })
        .expect("base64");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clones_and_pushes_with_the_token_only() {
    let bare = BareRepo::create();
    let server = GitHttp::serve(&bare, "owner/repo", "tok-123").await;
    let dir = tempfile::tempdir().unwrap();
    let (home, work) = (dir.path().join("home"), dir.path().join("work"));
    std::fs::create_dir(&home).unwrap();
    let url = server.url();
    let work_s = work.to_str().unwrap();
    let denied = git(
        &home,
        dir.path(),
        Some("wrong"),
        &["clone", "-q", &url, work_s],
    );
    assert!(!denied.status.success(), "{denied:?}");
    let anonymous = git(&home, dir.path(), None, &["clone", "-q", &url, work_s]);
    assert!(!anonymous.status.success(), "{anonymous:?}");

    let ok = git(
        &home,
        dir.path(),
        Some("tok-123"),
        &["clone", "-q", &url, work_s],
    );
    assert!(ok.status.success(), "{ok:?}");
    assert!(work.join("README.md").exists());
    std::fs::write(work.join("new.txt"), "pushed\n").unwrap();
    for args in [
        &["add", "-A"][..],
        &["commit", "-qm", "new"],
        &["push", "-q", "origin", "HEAD:refs/heads/topic"],
    ] {
        let out = git(&home, &work, Some("tok-123"), args);
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
    assert_eq!(
        bare.read_file("topic", "new.txt").as_deref(),
        Some("pushed\n")
    );
    let requests = server.requests();
    assert!(requests.iter().any(|r| !r.authorized), "{requests:#?}");
    assert!(
        requests
            .iter()
            .any(|r| r.authorized && r.path == "/owner/repo.git/git-receive-pack"),
        "{requests:#?}"
    );
}
