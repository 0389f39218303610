//! What a scheduler pass can fail with. The store and the runtime fail for different reasons
//! and callers treat them differently (a store failure is an infrastructure problem of this
//! process; a runtime failure concerns one task's worker), so a runtime error is reported as
//! itself and never disguised as a store error.

use crate::runtime::RuntimeError;
use crate::store::StoreError;
use crate::task::TaskId;

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("task store")]
    Store(#[from] StoreError),
    /// The runtime could not say what became of this task's worker.
    #[error("runtime, about task {task_id}")]
    Runtime {
        task_id: TaskId,
        #[source]
        source: RuntimeError,
    },
}

impl SchedulerError {
    /// The error and every cause below it, for a log line.
    pub fn detail(&self) -> String {
        crate::runtime::error_chain(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runtime_failure_is_not_a_store_failure() {
        let e = SchedulerError::Runtime {
            task_id: TaskId::new(),
            source: RuntimeError::unavailable("api down"),
        };
        let source = std::error::Error::source(&e).expect("a source");
        assert!(source.downcast_ref::<RuntimeError>().is_some());
        assert!(source.downcast_ref::<StoreError>().is_none());
    }
}
