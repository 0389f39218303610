//! The process node against the real kube-apiserver of the test environment
//! (`ao_kube_testenv::env()`): each test has its own restricted namespace and its own node.

mod harness;

mod failures;
mod isolation;
mod lifecycle;
mod logs;
mod run;
