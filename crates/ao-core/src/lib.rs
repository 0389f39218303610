//! Core of Agent Orchestrator: the domain model and the traits that adapters implement.
//!
//! This crate knows nothing of HTTP, SQL or Kubernetes. It holds
//! - the task model and its validation ([`task`], [`validation`]),
//! - the lifecycle state machine, as one pure function ([`lifecycle`]),
//! - the [`store::TaskStore`] and [`runtime::Runtime`] traits that backends implement,
//! - the [`scheduler::Scheduler`], which drives tasks from `queued` to a terminal state
//!   through whichever runtime was chosen at startup,
//! - the pipeline that copies worker output into the store for every runtime ([`output`]),
//! - the metrics that the scheduler and the API share ([`metrics`]),
//! - the injectable [`clock::Clock`] the scheduler reads time from, so tests move it by hand,
//! - the contract between the orchestrator and its workers ([`worker`]),
//! - leadership among replicas sharing a database, with fencing ([`lease`]),
//! - usage reports (finished tasks, cost and run time per day) for every backend ([`usage`]).

pub mod clock;
pub mod lease;
pub mod lifecycle;
pub mod metrics;
pub mod output;
pub mod retry;
pub mod runtime;
pub mod scheduler;
pub mod store;
pub mod task;
pub mod token;
pub mod usage;
pub mod validation;
pub mod worker;

pub use lifecycle::{Reason, TaskStatus, TransitionError};
pub use task::{NewTask, Repository, Task, TaskId, TaskSpec, WorkerRef};
