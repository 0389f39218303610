//! The environment a runtime gives a worker process: which task, where its spec and workspace
//! are, and how to call back. Runtimes build a [`WorkerEnv`] and turn it into variables with
//! [`WorkerEnv::to_env`]; the worker reads it back with [`WorkerEnv::from_env`]. The variable
//! names live here only ([`names`]).
//!
//! Secret values (the callback token) are [`SecretString`]s: they never print in `Debug`, and
//! [`EnvValue::Secret`] tells a runtime that stores secrets apart (Kubernetes) to pass a
//! reference instead of the value.

use std::fmt;
use std::path::PathBuf;

use secrecy::SecretString;

use crate::task::{TaskId, TaskSpec};

/// The names of the variables a runtime sets.
pub mod names {
    /// The task's uuid.
    pub const TASK_ID: &str = "AO_TASK_ID";
    /// Path of a file holding the task spec as JSON (local runtime).
    pub const TASK_FILE: &str = "AO_TASK_FILE";
    /// The task spec as inline JSON (Kubernetes runtime).
    pub const TASK_SPEC: &str = "AO_TASK_SPEC";
    /// The work directory (default: the current directory).
    pub const WORKSPACE: &str = "AO_WORKSPACE";
    /// A home of the worker's own, for Claude Code and git.
    pub const HOME: &str = "HOME";
    /// Temporary files.
    pub const TMPDIR: &str = "TMPDIR";
    /// Base URL of the orchestrator's callback routes.
    pub const CALLBACK_URL: &str = "AO_CALLBACK_URL";
    /// The per-task bearer token for the callback routes (secret).
    pub const CALLBACK_TOKEN: &str = "AO_CALLBACK_TOKEN";
}

/// Key of the callback token inside a per-task secret object (Kubernetes `Secret.data`).
pub const CALLBACK_TOKEN_KEY: &str = "token";

/// Where the worker finds its task spec.
#[derive(Clone)]
pub enum TaskSource {
    /// A JSON file ([`names::TASK_FILE`]).
    File(PathBuf),
    /// Inline JSON ([`names::TASK_SPEC`]).
    Inline(TaskSpec),
}

impl fmt::Debug for TaskSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskSource::File(p) => f.debug_tuple("File").field(p).finish(),
            // The spec holds the prompt, which is never logged.
            TaskSource::Inline(_) => f.write_str("Inline(..)"),
        }
    }
}

/// How the worker reaches the orchestrator.
#[derive(Debug, Clone)]
pub struct CallbackEnv {
    /// Base URL, without a trailing slash.
    pub url: String,
    pub token: SecretString,
}

/// Everything a runtime tells a worker through its environment.
#[derive(Debug, Clone)]
pub struct WorkerEnv {
    pub task_id: TaskId,
    pub task: TaskSource,
    pub workspace: Option<PathBuf>,
    pub home: Option<PathBuf>,
    pub tmpdir: Option<PathBuf>,
    /// `None`: the worker does not report back (events go to stdout only).
    pub callback: Option<CallbackEnv>,
}

/// One variable's value.
#[derive(Debug, Clone)]
pub enum EnvValue {
    Plain(String),
    /// A secret. A runtime that stores secrets apart keeps it under `key` and passes a reference.
    Secret {
        value: SecretString,
        key: &'static str,
    },
}

/// One variable for the worker.
#[derive(Debug, Clone)]
pub struct EnvVar {
    pub name: &'static str,
    pub value: EnvValue,
}

/// Why the environment does not describe a task. Names variables, never their values.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("missing environment variable {0}")]
    Missing(&'static str),
    #[error("invalid value in {0}")]
    Invalid(&'static str),
    #[error("cannot read the task file named by {}", names::TASK_FILE)]
    TaskFile(#[source] std::io::Error),
    #[error("invalid task spec in {0}: {1}")]
    Spec(&'static str, #[source] serde_json::Error),
}

impl WorkerEnv {
    /// The variables, in the order a runtime should apply them (later ones win).
    pub fn to_env(&self) -> Vec<EnvVar> {
        let plain = |name, value: String| EnvVar {
            name,
            value: EnvValue::Plain(value),
        };
        let path = |p: &PathBuf| p.to_string_lossy().into_owned();
        let mut env = vec![plain(names::TASK_ID, self.task_id.to_string())];
        env.push(match &self.task {
            TaskSource::File(p) => plain(names::TASK_FILE, path(p)),
            TaskSource::Inline(spec) => plain(
                names::TASK_SPEC,
                serde_json::to_string(spec).expect("a task spec serializes"),
            ),
        });
        for (name, value) in [
            (names::WORKSPACE, &self.workspace),
            (names::HOME, &self.home),
            (names::TMPDIR, &self.tmpdir),
        ] {
            if let Some(v) = value {
                env.push(plain(name, path(v)));
            }
        }
        if let Some(cb) = &self.callback {
            env.push(plain(names::CALLBACK_URL, cb.url.clone()));
            env.push(EnvVar {
                name: names::CALLBACK_TOKEN,
                value: EnvValue::Secret {
                    value: cb.token.clone(),
                    key: CALLBACK_TOKEN_KEY,
                },
            });
        }
        env
    }

    /// Reads the variables back; empty values count as unset. The task file is not read here
    /// (see [`WorkerEnv::spec`]).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, EnvError> {
        let get = |k: &str| get(k).filter(|v| !v.is_empty());
        let task_id = get(names::TASK_ID)
            .ok_or(EnvError::Missing(names::TASK_ID))?
            .trim()
            .parse()
            .map_err(|_| EnvError::Invalid(names::TASK_ID))?;
        let task = if let Some(path) = get(names::TASK_FILE) {
            TaskSource::File(PathBuf::from(path))
        } else if let Some(json) = get(names::TASK_SPEC) {
            TaskSource::Inline(
                serde_json::from_str(&json).map_err(|e| EnvError::Spec(names::TASK_SPEC, e))?,
            )
        } else {
            return Err(EnvError::Missing("AO_TASK_FILE or AO_TASK_SPEC"));
        };
        let callback = match (get(names::CALLBACK_URL), get(names::CALLBACK_TOKEN)) {
            (Some(url), Some(token)) => Some(CallbackEnv {
                url: url.trim_end_matches('/').to_owned(),
                token: SecretString::from(token),
            }),
            (Some(_), None) => return Err(EnvError::Missing(names::CALLBACK_TOKEN)),
            _ => None,
        };
        Ok(WorkerEnv {
            task_id,
            task,
            workspace: get(names::WORKSPACE).map(PathBuf::from),
            home: get(names::HOME).map(PathBuf::from),
            tmpdir: get(names::TMPDIR).map(PathBuf::from),
            callback,
        })
    }

    /// The task spec, reading the task file if that is where it is.
    pub fn spec(&self) -> Result<TaskSpec, EnvError> {
        match &self.task {
            TaskSource::Inline(spec) => Ok(spec.clone()),
            TaskSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(EnvError::TaskFile)?;
                serde_json::from_str(&text).map_err(|e| EnvError::Spec(names::TASK_FILE, e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use secrecy::ExposeSecret;

    use super::*;

    fn spec() -> TaskSpec {
        serde_json::from_str(r#"{"prompt":"a secret plan","timeout_seconds":60}"#).unwrap()
    }

    fn sample(task: TaskSource) -> WorkerEnv {
        WorkerEnv {
            task_id: TaskId::new(),
            task,
            workspace: Some("/w/workspace".into()),
            home: Some("/w/home".into()),
            tmpdir: None,
            callback: Some(CallbackEnv {
                url: "http://127.0.0.1:8080".into(),
                token: SecretString::from("tok-very-secret"),
            }),
        }
    }

    fn as_map(env: &[EnvVar]) -> BTreeMap<String, String> {
        env.iter()
            .map(|v| {
                let value = match &v.value {
                    EnvValue::Plain(s) => s.clone(),
                    EnvValue::Secret { value, .. } => value.expose_secret().to_owned(),
                };
                (v.name.to_owned(), value)
            })
            .collect()
    }

    #[test]
    fn round_trips_through_variables() {
        let env = sample(TaskSource::Inline(spec()));
        let vars = as_map(&env.to_env());
        let back = WorkerEnv::from_env(|k| vars.get(k).cloned()).unwrap();
        assert_eq!(back.task_id, env.task_id);
        assert_eq!(back.spec().unwrap(), spec());
        assert_eq!(back.workspace, env.workspace);
        assert_eq!(back.home, env.home);
        assert_eq!(back.tmpdir, None);
        let cb = back.callback.unwrap();
        assert_eq!(cb.url, "http://127.0.0.1:8080");
        assert_eq!(cb.token.expose_secret(), "tok-very-secret");
    }

    #[test]
    fn reads_a_task_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("task.json");
        std::fs::write(&file, serde_json::to_string(&spec()).unwrap()).unwrap();
        let env = sample(TaskSource::File(file.clone()));
        let vars = as_map(&env.to_env());
        assert_eq!(vars[names::TASK_FILE], file.to_string_lossy());
        assert!(!vars.contains_key(names::TASK_SPEC));
        let back = WorkerEnv::from_env(|k| vars.get(k).cloned()).unwrap();
        assert_eq!(back.spec().unwrap(), spec());
    }

    #[test]
    fn only_the_token_is_secret_and_debug_hides_it() {
        let env = sample(TaskSource::Inline(spec()));
        let vars = env.to_env();
        let secret: Vec<_> = vars
            .iter()
            .filter(|v| matches!(v.value, EnvValue::Secret { .. }))
            .map(|v| v.name)
            .collect();
        assert_eq!(secret, [names::CALLBACK_TOKEN]);
        let printed = format!("{env:?} {vars:?}");
        assert!(!printed.contains("tok-very-secret"), "{printed}");
        assert!(!format!("{env:?}").contains("a secret plan"));
    }

    #[test]
    fn errors_name_the_variable_not_the_value() {
        let e = WorkerEnv::from_env(|k| (k == names::TASK_ID).then(|| "nope-secret".into()))
            .unwrap_err();
        assert!(e.to_string().contains("AO_TASK_ID") && !e.to_string().contains("nope"));
        let id = TaskId::new().to_string();
        let e = WorkerEnv::from_env(|k| (k == names::TASK_ID).then(|| id.clone())).unwrap_err();
        assert!(e.to_string().contains("AO_TASK_FILE"), "{e}");
        let e = WorkerEnv::from_env(|k| match k {
            names::TASK_ID => Some(id.clone()),
            names::TASK_SPEC => Some(r#"{"prompt":"x","timeout_seconds":1}"#.into()),
            names::CALLBACK_URL => Some("http://x".into()),
            _ => None,
        })
        .unwrap_err();
        assert!(e.to_string().contains("AO_CALLBACK_TOKEN"), "{e}");
    }
}
