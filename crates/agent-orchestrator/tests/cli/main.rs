//! `agent-orchestrator tasks ...` and `completions`: the real binary against a real server on
//! 127.0.0.1:0 (script workers), checking output, exit codes and error messages; and the
//! event follower against a fake server that drops the connection (`resume`).
//!
//! One test binary, split by area: `submit`, `list`, `follow` (logs, events, wait, cancel),
//! `errors` (tokens, exit codes), `resume`. The helpers that run the CLI are here.

#[path = "../common/mod.rs"]
mod common;

mod errors;
mod follow;
mod list;
mod resume;
mod submit;

use std::process::Stdio;
use std::time::Duration;

use common::{BIN, TestApp};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// Every CLI run is bounded by this.
pub const RUN_LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// A failure: the given exit code and exactly one `error: ...` line on stderr.
    pub fn assert_error(&self, code: i32, needle: &str) {
        assert_eq!(self.code, code, "{self:?}");
        let lines: Vec<&str> = self.stderr.trim_end().lines().collect();
        assert_eq!(lines.len(), 1, "one line on stderr: {self:?}");
        assert!(lines[0].starts_with("error: "), "{self:?}");
        assert!(
            lines[0].contains(needle),
            "stderr mentions `{needle}`: {self:?}"
        );
        assert!(self.stdout.is_empty(), "nothing on stdout: {self:?}");
    }
}

/// Run the binary with `AO_URL` (and `AO_TOKEN` when given); `stdin` is piped when given.
pub async fn run_cli(url: &str, token: Option<&str>, args: &[&str], stdin: Option<&str>) -> Out {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.args(args)
        .env("AO_URL", url)
        .env_remove("AO_TOKEN")
        .env_remove("AO_CONFIG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(t) = token {
        cmd.env("AO_TOKEN", t);
    }
    let mut child = cmd.spawn().expect("spawn the CLI");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
        drop(pipe);
    }
    let out = tokio::time::timeout(RUN_LIMIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "`agent-orchestrator {}` did not end within {RUN_LIMIT:?}",
                args.join(" ")
            )
        })
        .unwrap();
    Out {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub async fn cli(app: &TestApp, args: &[&str]) -> Out {
    run_cli(&app.base, app.token.as_deref(), args, None).await
}

/// Submit through the CLI with `-o json`; returns the id.
pub async fn submit(app: &TestApp, args: &[&str]) -> String {
    let mut argv = vec!["tasks", "submit", "-o", "json"];
    argv.extend_from_slice(args);
    let out = cli(app, &argv).await;
    assert_eq!(out.code, 0, "{out:?}");
    out.json()["id"].as_str().expect("id").to_string()
}

pub fn is_terminal(s: &str) -> bool {
    matches!(s, "succeeded" | "failed" | "cancelled" | "timed_out")
}
