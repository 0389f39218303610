//! End-to-end tests: the orchestrator's scheduler, a SQLite store and the real kube client,
//! against the Kubernetes API simulator.

mod common;
mod config_error;
mod failures;
mod lifecycle;
mod podspec;
mod process;
mod rbac;
mod resilience;
