//! Replicas on one PostgreSQL database (README "HA with PostgreSQL"): the real server binary
//! three times over, the Kubernetes runtime against the simulator, and a real PostgreSQL
//! (`scripts/postgres-test.sh`, started by `scripts/test.sh`; each test gets a fresh
//! database). Every replica serves the whole API; one at a time runs the scheduler under a
//! lease whose generation fences its writes.

mod cluster;
mod failover;
mod feed;
mod fencing;
#[path = "../scheduler_step/harness.rs"]
mod harness;
mod partition;
mod proxy;
mod rolling;

/// Every terminal status.
pub const TERMINAL: &[&str] = &["succeeded", "failed", "cancelled", "timed_out"];
