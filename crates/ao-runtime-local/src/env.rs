//! The worker's environment: built from nothing, so a worker only sees what it is meant to.

use std::path::Path;

use ao_core::runtime::LaunchSpec;

use crate::LocalConfig;

/// Orchestrator variables that pass through to workers by default. Secrets the agent worker
/// needs are here; everything else in the orchestrator's environment stays behind.
pub const DEFAULT_PASS_ENV: &[&str] = &[
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "GITHUB_TOKEN",
    "CLAUDE_CODE_MAX_RETRIES",
    "AO_CLAUDE_BIN",
    "AO_GITHUB_API_URL",
    "AO_GITHUB_REPO",
    "AO_ALLOWED_TOOLS",
    "AO_PERMISSION_MODE",
    "AO_LOG_FORMAT",
];

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
    let path = |p: &str| dir.join(p).to_string_lossy().into_owned();
    env.push(("HOME".into(), path("home")));
    env.push(("TMPDIR".into(), path("tmp")));
    env.push(("AO_TASK_ID".into(), spec.task.id.to_string()));
    env.push(("AO_TASK_FILE".into(), path("task.json")));
    env.push(("AO_WORKSPACE".into(), path("workspace")));
    if let Some(cb) = &spec.callback {
        env.push(("AO_CALLBACK_URL".into(), cb.url.clone()));
        env.push(("AO_CALLBACK_TOKEN".into(), cb.token.clone()));
    }
    env
}
