//! The contract between the orchestrator and a worker process, defined once for every
//! runtime and for the worker itself:
//! - [`env`]: the variables a runtime sets for a task ([`WorkerEnv`]),
//! - [`settings`]: the variables a user may set for every worker ([`settings::SETTINGS`]),
//! - [`callback`]: the routes the worker calls back on and their bodies,
//! - [`Outcome`]: what the worker reports became of the run.
//!
//! A new runtime builds a [`WorkerEnv`] and applies [`WorkerEnv::to_env`]; it copies none of
//! these names.

pub mod callback;
pub mod env;
mod outcome;
pub mod settings;

pub use callback::{EventAck, EventBatch};
pub use env::{CallbackEnv, EnvError, EnvValue, EnvVar, TaskSource, WorkerEnv};
pub use outcome::{Outcome, UnknownOutcome};
