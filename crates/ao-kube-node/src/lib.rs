//! A process node for tests: registers a Node with a real kube-apiserver, binds the pods of
//! its namespaces to itself and runs each pod's container command as a local process, as a
//! kubelet would (status, deadlines, graceful deletion, memory limits, the log endpoint).
//! Test infrastructure only; see the crate description.
