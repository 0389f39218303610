//! The Kubernetes runtime of Agent Orchestrator: every task runs in one ephemeral, hardened
//! worker Pod (`claude-worker-<task-id>`), created through kube-rs and followed with a single
//! label-selected watch — never by polling pods.
//!
//! - [`config`]: the `serve` flags ([`KubeArgs`]) and how the API client is found
//!   ([`client_from_config`]);
//! - [`pod`]: the Pod and per-task token Secret the runtime creates, and the admission limit;
//! - [`runtime`]: [`KubeRuntime`], the `ao_core::runtime::Runtime` implementation;
//! - `watch`, `pod_follower`, `logs`: the pod watch, the per-task state machine that turns pod
//!   changes into exactly one terminal event, and the log follower that stores output.
//!
//! RBAC the runtime needs in its namespace: pods `create`, `delete`, `get`, `list`, `watch`;
//! `pods/log` `get`; secrets `create`, `delete` (never `get`/`list`/`watch`). The test
//! `tests/e2e/rbac.rs` checks this list, and `deploy/rbac.yaml`, against the calls a full
//! task lifecycle makes on the simulator.

mod client_retry;
pub mod config;
pub mod error;
mod logs;
pub mod pod;
mod pod_follower;
pub mod podstate;
pub mod rbac;
pub mod runtime;
mod watch;

pub use config::{
    ClientSources, KubeArgs, KubeConfig, Resources, client_from_config, client_from_sources,
};
pub use error::{KubeError, RetryPolicy};
pub use runtime::KubeRuntime;
