//! Watches on the real API server (issue 14, proof 6), with the real
//! `agent-orchestrator serve --runtime kubernetes` authenticated as its ServiceAccount (the Role
//! of `deploy/rbac.yaml`) and the real worker with the pinned Claude Code CLI in every pod:
//! - [`resume`]: a cut connection is resumed from the watch's resourceVersion, not relisted;
//! - [`compaction`]: after an etcd compaction, with the watch cache off, the resume gets
//!   410 Gone and the runtime relists;
//! - [`apf`]: API Priority and Fairness squeezes the orchestrator's flow into 429s with
//!   Retry-After, which are retried, and every task still ends right;
//! - [`squeeze`] (issue 17): a busy neighbour keeps the level's seats taken for 60 s; launches
//!   slow down but never stand still, and every task succeeds once it is over;
//! - [`shutdown`] (issue 17): SIGTERM while launches are throttled begins no launch, and the
//!   next start adopts what was in flight.
//!
//! Each test has its own namespaces, node and orchestrator, and judges by the API server's
//! audit log. Needs the environment of `scripts/kube-testenv.sh` (started when not running)
//! and `AO_CLAUDE_BIN` or the installed CLI: without them the tests fail, never skip.

mod apf;
mod audit;
mod busy;
mod compaction;
mod flow;
mod orchestrator;
mod proxy;
mod resume;
mod shutdown;
mod squeeze;
mod world;
