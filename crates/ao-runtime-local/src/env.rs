//! The worker's environment: built from nothing, so a worker only sees what it is meant to.
//! The task's own variables come first, then what passes through from the orchestrator
//! ([`DEFAULT_PASS_ENV`] and `--worker-pass-env`), then the per-task contract
//! ([`ao_core::worker::WorkerEnv`]), which nothing may override.

use std::path::Path;

use ao_core::runtime::LaunchSpec;
use ao_core::worker::settings as s;
use ao_core::worker::{CallbackEnv, EnvValue, TaskSource, WorkerEnv};
use secrecy::{ExposeSecret, SecretString};

use crate::LocalConfig;

/// Orchestrator variables that pass through to workers by default: the system's basics and
/// every worker setting ([`ao_core::worker::settings::SETTINGS`]; a test keeps the two in
/// step). Everything else in the orchestrator's environment stays behind.
pub const DEFAULT_PASS_ENV: &[&str] = &[
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    s::ANTHROPIC_API_KEY,
    s::ANTHROPIC_BASE_URL,
    s::GITHUB_TOKEN,
    s::CLAUDE_MAX_RETRIES,
    s::CLAUDE_BIN,
    s::GITHUB_API_URL,
    s::GITHUB_REPO,
    s::ALLOWED_TOOLS,
    s::PERMISSION_MODE,
    s::GIT_AUTHOR_NAME,
    s::GIT_AUTHOR_EMAIL,
    s::LOG_FORMAT,
];

/// The contract part of a local worker's environment: the task file, its folders, the callback.
pub(crate) fn contract(spec: &LaunchSpec, dir: &Path) -> WorkerEnv {
    WorkerEnv {
        task_id: spec.task.id,
        task: TaskSource::File(dir.join("task.json")),
        workspace: Some(dir.join("workspace")),
        home: Some(dir.join("home")),
        tmpdir: Some(dir.join("tmp")),
        callback: spec.callback.as_ref().map(|cb| CallbackEnv {
            url: cb.url.clone(),
            token: SecretString::from(cb.token.clone()),
        }),
    }
}

/// Variables for one task's worker, in the order they are applied (later ones win).
pub(crate) fn worker_env(
    cfg: &LocalConfig,
    spec: &LaunchSpec,
    dir: &Path,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    // The task's own variables first: validation already refused reserved names, and the
    // runtime's own settings below override anything that slipped through.
    env.extend(
        spec.task
            .spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    for name in &cfg.pass_env {
        if let Ok(v) = std::env::var(name) {
            env.push((name.clone(), v));
        }
    }
    env.extend(cfg.extra_env.iter().cloned());
    // A local process gets secrets as values: its environment is private to its user.
    env.extend(contract(spec, dir).to_env().into_iter().map(|v| {
        let value = match v.value {
            EnvValue::Plain(s) => s,
            EnvValue::Secret { value, .. } => value.expose_secret().to_owned(),
        };
        (v.name.to_owned(), value)
    }));
    env
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use ao_core::runtime::Callback;
    use ao_core::task::{Task, TaskId};

    use super::*;

    #[test]
    fn every_worker_setting_passes_through_by_default() {
        for setting in s::SETTINGS {
            assert!(
                DEFAULT_PASS_ENV.contains(&setting.name),
                "{} is a worker setting but does not reach local workers",
                setting.name
            );
        }
    }

    fn launch(id: TaskId) -> LaunchSpec {
        let task: Task = serde_json::from_value(serde_json::json!({
            "id": id, "status": "starting", "reason": "scheduled", "prompt": "p",
            "timeout_seconds": 5, "env": {"AO_TASK_ID": "forged", "MY_VAR": "1"},
            "created_at": "2026-01-01T00:00:00Z",
        }))
        .unwrap();
        LaunchSpec {
            task,
            callback: Some(Callback {
                url: "http://127.0.0.1:1".into(),
                token: "tok".into(),
            }),
        }
    }

    #[test]
    fn the_contract_is_applied_last_and_reads_back() {
        let id = TaskId::new();
        let cfg = LocalConfig {
            root: "/r".into(),
            worker_command: vec![],
            supervisor: "/s".into(),
            pass_env: vec![],
            extra_env: vec![],
            run_as: None,
        };
        let dir = Path::new("/r/t");
        let env: BTreeMap<String, String> =
            worker_env(&cfg, &launch(id), dir).into_iter().collect();
        assert_eq!(env["MY_VAR"], "1");
        let back = WorkerEnv::from_env(|k| env.get(k).cloned()).unwrap();
        assert_eq!(back.task_id, id, "the task's env cannot forge the contract");
        assert!(matches!(back.task, TaskSource::File(ref p) if p == &dir.join("task.json")));
        assert_eq!(
            back.workspace.as_deref(),
            Some(dir.join("workspace").as_path())
        );
        assert_eq!(back.tmpdir.as_deref(), Some(dir.join("tmp").as_path()));
        assert_eq!(back.callback.unwrap().token.expose_secret(), "tok");
    }
}
