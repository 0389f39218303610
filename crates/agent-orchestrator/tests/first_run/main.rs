//! A new user's first run.
//!
//! - `fresh`: the fresh machine. The README's run command, parsed from README.md and run as
//!   written, with a temporary HOME, a PATH without `claude` and only `ANTHROPIC_API_KEY` (and
//!   `ANTHROPIC_BASE_URL` at the fake Anthropic API) set: it installs the pinned Claude Code
//!   and starts a server; then the README's quick-start commands, as written, submit a task,
//!   watch its events and read its result, which is `succeeded`/`answered`.
//! - `admission`: while Claude Code is missing, both submit routes answer 503
//!   `agent_unavailable` with the fix, start-up logs a warning per problem and `/readyz` says
//!   why; once Claude Code is there, the next submission is accepted, without a restart. And
//!   a worker that cannot start Claude Code ends its task `agent_unavailable`, not
//!   `agent_error`.
//!
//! Both run the pinned Claude Code CLI (`AO_CLAUDE_BIN`, or `scripts/install-claude.sh`),
//! and fail without it.

#[path = "../common/mod.rs"]
mod common;

mod admission;
mod fresh;
mod readme;
mod server;
