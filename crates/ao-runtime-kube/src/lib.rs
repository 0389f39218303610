//! Kubernetes runtime (issue 4): placeholder until implemented.
