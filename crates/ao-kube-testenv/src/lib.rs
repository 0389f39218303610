//! Starts or attaches to the real Kubernetes test environment (`scripts/kube-testenv.sh`) and
//! hands tests what they need from it. Test infrastructure only.
