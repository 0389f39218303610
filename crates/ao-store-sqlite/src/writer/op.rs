//! The write operations the writer batches: one variant per [`ao_core::store::TaskStore`]
//! write, carrying what the SQL needs already serialized (JSON is made by the caller, on its
//! own thread, not by the single writer). Applying an op returns its answer and which
//! followers to wake once its batch is committed.

use ao_core::lifecycle::TaskStatus;
use ao_core::store::{Created, StoreError, StoreResult, Transition};
use ao_core::task::{NewTask, Task, TaskId};
use sqlx::SqliteConnection;

use crate::output::{self, Stream};
use crate::{durable, write};

/// One write, as sent to the writer.
#[derive(Debug)]
pub(crate) enum Op {
    Create {
        task: NewTask,
        /// `task.spec` as JSON.
        spec: String,
        max_queued: usize,
    },
    Transition {
        id: TaskId,
        from: TaskStatus,
        t: Transition,
    },
    Cancel {
        id: TaskId,
    },
    SetResult {
        id: TaskId,
        json: String,
    },
    TokenHash {
        id: TaskId,
        hash: String,
    },
    /// A non-empty batch of lines or events.
    Append {
        stream: Stream,
        id: TaskId,
        texts: Vec<String>,
    },
    AppendAt {
        stream: Stream,
        id: TaskId,
        first_seq: i64,
        texts: Vec<String>,
    },
    /// Fault injection for the writer's own tests: SQLite offers no quick way to make a
    /// commit fail or a writer die on demand.
    #[cfg(test)]
    Fault(Fault),
}

/// What a test makes go wrong inside a batch.
#[cfg(test)]
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fault {
    /// Leave a deferred foreign-key violation behind, so that the batch's COMMIT fails.
    FailCommit,
    /// Panic inside the batch, as a bug in the writer would.
    Panic,
}

/// An op's answer; the store's trait methods take the variant they asked for.
#[derive(Debug)]
pub(crate) enum Done {
    Created(Created),
    Task(Task),
    Seq(i64),
    Unit,
}

/// Which followers to wake after the op's batch is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    Nobody,
    /// The task's output grew: wake its followers.
    Output(TaskId),
    /// The task itself changed: wake its followers and the list's.
    Task(TaskId),
}

impl Op {
    /// Bytes the op carries, for the batch's budget.
    pub(crate) fn size(&self) -> usize {
        let texts = |t: &[String]| t.iter().map(String::len).sum::<usize>();
        match self {
            Op::Create { spec, .. } => spec.len(),
            Op::SetResult { json, .. } => json.len(),
            Op::Append { texts: t, .. } | Op::AppendAt { texts: t, .. } => texts(t),
            _ => 0,
        }
    }

    /// Whether the op's commit must reach the disk before it is answered (see `durable`).
    pub(crate) fn durable(&self) -> bool {
        match self {
            Op::Create { .. } => durable::CREATE,
            Op::Transition { t, .. } => durable::transition(t.to),
            Op::Cancel { .. } => durable::CANCEL,
            _ => false,
        }
    }

    /// Run the op inside the batch's open transaction (and its own savepoint).
    pub(crate) async fn apply(&self, conn: &mut SqliteConnection) -> StoreResult<(Done, Notice)> {
        match self {
            Op::Create {
                task,
                spec,
                max_queued,
            } => match write::create(conn, task, spec, *max_queued).await? {
                Created::New(t) => Ok((Done::Created(Created::New(t)), Notice::Task(task.id))),
                existing => Ok((Done::Created(existing), Notice::Nobody)),
            },
            Op::Transition { id, from, t } => {
                let task = write::transition(conn, *id, *from, t).await?;
                Ok((Done::Task(task), Notice::Task(*id)))
            }
            Op::Cancel { id } => {
                let task = write::cancel(conn, *id).await?;
                Ok((Done::Task(task), Notice::Task(*id)))
            }
            Op::SetResult { id, json } => {
                write::set_result(conn, *id, json).await?;
                Ok((Done::Unit, Notice::Task(*id)))
            }
            Op::TokenHash { id, hash } => {
                write::set_token_hash(conn, *id, hash).await?;
                Ok((Done::Unit, Notice::Nobody))
            }
            Op::Append { stream, id, texts } => {
                let last = output::append(conn, *stream, *id, texts).await?;
                Ok((Done::Seq(last), Notice::Output(*id)))
            }
            Op::AppendAt {
                stream,
                id,
                first_seq,
                texts,
            } => {
                let (last, wrote) =
                    output::append_numbered(conn, *stream, *id, *first_seq, texts).await?;
                let notice = if wrote {
                    Notice::Output(*id)
                } else {
                    Notice::Nobody
                };
                Ok((Done::Seq(last), notice))
            }
            #[cfg(test)]
            Op::Fault(fault) => fault.apply(conn).await,
        }
    }
}

#[cfg(test)]
impl Fault {
    async fn apply(self, conn: &mut SqliteConnection) -> StoreResult<(Done, Notice)> {
        match self {
            Fault::FailCommit => {
                // Checked at COMMIT, not at the statement: a label of no task.
                sqlx::raw_sql(
                    "PRAGMA defer_foreign_keys = ON; \
                     INSERT INTO task_labels (task_id, key, value) VALUES ('no-such-task', 'k', 'v')",
                )
                .execute(conn)
                .await
                .map_err(crate::db_err)?;
                Ok((Done::Unit, Notice::Nobody))
            }
            Fault::Panic => panic!("injected writer fault"),
        }
    }
}

/// The answer of an op that was given a different variant than its method asked for: a bug
/// in the writer, reported as a backend error rather than a panic.
#[derive(Debug, thiserror::Error)]
#[error("the writer answered {0} to a write that expects another answer")]
pub(crate) struct Mismatch(&'static str);

impl Done {
    fn kind(&self) -> &'static str {
        match self {
            Done::Created(_) => "a creation",
            Done::Task(_) => "a task",
            Done::Seq(_) => "a sequence number",
            Done::Unit => "nothing",
        }
    }

    pub(crate) fn created(self) -> StoreResult<Created> {
        match self {
            Done::Created(c) => Ok(c),
            other => Err(StoreError::backend(Mismatch(other.kind()))),
        }
    }

    pub(crate) fn task(self) -> StoreResult<Task> {
        match self {
            Done::Task(t) => Ok(t),
            other => Err(StoreError::backend(Mismatch(other.kind()))),
        }
    }

    pub(crate) fn seq(self) -> StoreResult<i64> {
        match self {
            Done::Seq(n) => Ok(n),
            other => Err(StoreError::backend(Mismatch(other.kind()))),
        }
    }

    pub(crate) fn unit(self) -> StoreResult<()> {
        match self {
            Done::Unit => Ok(()),
            other => Err(StoreError::backend(Mismatch(other.kind()))),
        }
    }
}
