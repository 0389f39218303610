//! The product on a real Kubernetes API server (kube-apiserver, etcd and
//! kube-controller-manager from `scripts/kube-testenv.sh`, attached to or started by
//! `ao-kube-testenv`): the real `agent-orchestrator serve --runtime kubernetes` binary,
//! authenticated as its own ServiceAccount with the Role of `deploy/rbac.yaml`, runs tasks
//! as pods that a process node (`ao-kube-node`) runs as local processes.
//!
//! - [`product`]: the full product path (the real worker and Claude Code CLI in a pod, a pull
//!   request on the fake GitHub) and the original service's e2e test;
//! - [`failures`]: cancel, deadline, OOM, image pull failure, a missing worker Secret, a pod
//!   deleted by someone else;
//! - [`resilience`]: an unreachable log stream, an orchestrator restart with a running pod.
//!
//! Each test makes its own namespaces, ServiceAccount, RBAC and node, so they run in
//! parallel. Needs the pinned Claude Code CLI (`AO_CLAUDE_BIN`); fails, never skips, without
//! it or without the environment.

mod failures;
mod product;
mod resilience;
mod support;
