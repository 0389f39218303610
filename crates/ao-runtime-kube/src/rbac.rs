//! The API access the runtime needs in its namespace, as a list `agent-orchestrator doctor`
//! asks the API server about (SelfSubjectAccessReview). `deploy/rbac.yaml` grants exactly
//! these (a test in `agent-orchestrator` keeps the two equal; `tests/e2e/rbac.rs` checks the
//! Role against the calls a full lifecycle makes).

/// One permission: core-group `resource` (with its `subresource`, or "") and `verb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    pub resource: &'static str,
    pub subresource: &'static str,
    pub verb: &'static str,
}

const fn access(resource: &'static str, subresource: &'static str, verb: &'static str) -> Access {
    Access {
        resource,
        subresource,
        verb,
    }
}

/// Every permission the runtime uses, in the worker namespace.
pub const REQUIRED_ACCESS: &[Access] = &[
    access("pods", "", "create"),
    access("pods", "", "list"),
    access("pods", "", "watch"),
    access("pods", "", "delete"),
    access("pods", "log", "get"),
    access("secrets", "", "create"),
    access("secrets", "", "delete"),
];
