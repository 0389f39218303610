//! Test-only stand-ins for the outside systems the orchestrator and its workers talk to.
//!
//! Exists so that tests can run the *real* Claude Code CLI and real `git` end to end without
//! the internet and without spending money:
//!
//! - [`FakeAnthropic`]: the Anthropic Messages API (SSE streaming), driven by a [`Script`].
//! - [`FakeGitHub`]: the slice of the GitHub REST API the worker uses (pull requests).
//! - [`git`]: local bare repositories to clone from and push to.
//! - [`GitHttp`]: a bare repository served over smart HTTP with GitHub's token auth.
//! - [`claude_bin`]: locates the pinned Claude Code binary (see `scripts/install-claude.sh`).
//! - [`postgres`]: a fresh database per test on the real PostgreSQL server the tests run.
//! - [`readme`]: drift checks that keep generated README sections equal to the code.
//!
//! Every server binds `127.0.0.1:0` and stops when dropped.

pub mod anthropic;
mod claude;
pub mod git;
mod git_http;
pub mod github;
pub mod postgres;
pub mod readme;
mod serve;

pub use anthropic::{Block, FakeAnthropic, RecordedRequest, Reply, Script, Turn, Usage};
pub use claude::{claude_bin, claude_version};
pub use git_http::{GitHttp, GitRequest};
pub use github::{FakeGitHub, PullRequest};
