//! `serve`'s side of the checks: the start-up report `/readyz` shows, and the admission gate.
//! While the built-in agent cannot run (no Claude Code, no API key), submissions answer 503
//! `agent_unavailable` with the fix. Claude Code is looked for again at most once a second
//! (and its version only asked again when the file changed), so installing it opens
//! submissions without a restart.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use ao_api::Readiness;

use super::names::{ANTHROPIC_API, CLAUDE_CODE};
use super::{Check, CheckStatus, Env, local};

/// How long one answer about Claude Code is reused.
const RECHECK_AFTER: Duration = Duration::from_secs(1);

/// The checks of a running server.
pub struct ServeReadiness {
    /// `None` when workers are not the built-in agent on this machine: nothing is gated.
    agent: Option<AgentProbe>,
    startup: RwLock<Vec<Check>>,
}

struct AgentProbe {
    env: Env,
    /// The API key check: the environment does not change while the server runs.
    api: Check,
    /// The last answer, and the lock a probe holds while it runs: callers meanwhile wait for
    /// it and share its answer, so unauthenticated `/readyz` traffic starts at most one
    /// `claude --version` at a time, once a second at most, whether it succeeds or not.
    last: tokio::sync::Mutex<Option<(Instant, Check)>>,
}

impl ServeReadiness {
    /// For a server whose workers run the built-in agent here when `builtin_agent`.
    pub fn new(builtin_agent: bool, env: Env) -> Self {
        let agent = builtin_agent.then(|| AgentProbe {
            api: local::anthropic_api(&env),
            env,
            last: tokio::sync::Mutex::new(None),
        });
        ServeReadiness {
            agent,
            startup: RwLock::new(Vec::new()),
        }
    }

    /// Keep the start-up checks for `/readyz`.
    pub fn set_startup(&self, checks: Vec<Check>) {
        *self.startup.write().unwrap_or_else(|e| e.into_inner()) = checks;
    }
}

impl AgentProbe {
    async fn claude(&self) -> Check {
        let mut last = self.last.lock().await;
        if let Some((at, c)) = last.as_ref()
            && at.elapsed() < RECHECK_AFTER
        {
            return c.clone();
        }
        let c = local::claude_code(&self.env).await;
        *last = Some((Instant::now(), c.clone()));
        c
    }

    async fn problems(&self) -> Vec<Check> {
        [self.claude().await, self.api.clone()]
            .into_iter()
            .filter(|c| c.status == CheckStatus::Fail)
            .collect()
    }
}

#[async_trait::async_trait]
impl Readiness for ServeReadiness {
    async fn agent_unavailable(&self) -> Option<String> {
        let problems = self.agent.as_ref()?.problems().await;
        if problems.is_empty() {
            return None;
        }
        let said: Vec<String> = problems
            .iter()
            .map(|c| match &c.fix {
                Some(fix) => format!("{}; fix: {fix}", c.message),
                None => c.message.clone(),
            })
            .collect();
        Some(format!(
            "the built-in agent cannot run on this server: {}",
            said.join("; and ")
        ))
    }

    async fn checks(&self) -> Vec<Check> {
        let mut checks = self
            .startup
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(agent) = &self.agent {
            let now = [agent.claude().await, agent.api.clone()];
            checks.retain(|c| c.name != CLAUDE_CODE && c.name != ANTHROPIC_API);
            for (i, c) in now.into_iter().enumerate() {
                checks.insert(i.min(checks.len()), c);
            }
        }
        checks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_custom_worker_is_never_gated() {
        let r = ServeReadiness::new(false, Env::default());
        assert_eq!(r.agent_unavailable().await, None);
        assert!(r.checks().await.is_empty());
    }

    #[tokio::test]
    async fn the_gate_names_every_problem_with_its_fix_and_no_value() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("claude");
        let env = Env::from([("AO_CLAUDE_BIN", missing.to_str().unwrap())]);
        let r = ServeReadiness::new(true, env);
        let why = r.agent_unavailable().await.unwrap();
        assert!(
            why.contains("not found") && why.contains("scripts/install-claude.sh"),
            "{why}"
        );
        assert!(why.contains("ANTHROPIC_API_KEY"), "{why}");
        let names: Vec<String> = r.checks().await.into_iter().map(|c| c.name).collect();
        assert_eq!(names, [CLAUDE_CODE, ANTHROPIC_API]);
        let env = Env::from([
            ("AO_CLAUDE_BIN", missing.to_str().unwrap()),
            ("ANTHROPIC_API_KEY", "sk-ant-secret-value"),
        ]);
        let why = ServeReadiness::new(true, env)
            .agent_unavailable()
            .await
            .unwrap();
        assert!(
            !why.contains("sk-ant-secret-value") && !why.contains("ANTHROPIC_API"),
            "{why}"
        );
    }

    /// Many callers at once (unauthenticated `/readyz` traffic) start one probe, whose answer
    /// they share, even when the probe fails (a broken `claude` is not cached by version).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_callers_share_one_probe_even_a_failing_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let calls = dir.path().join("calls");
        let bin = dir.path().join("claude");
        std::fs::write(
            &bin,
            format!(
                "#!/bin/sh\necho x >> {}\nsleep 0.3\nexit 1\n",
                calls.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let env = Env::from([
            ("AO_CLAUDE_BIN", bin.to_str().unwrap()),
            ("ANTHROPIC_API_KEY", "k"),
        ]);
        let r = std::sync::Arc::new(ServeReadiness::new(true, env));
        let callers: Vec<_> = (0..8)
            .map(|_| {
                let r = r.clone();
                tokio::spawn(async move { r.agent_unavailable().await })
            })
            .collect();
        for c in callers {
            let why = c.await.unwrap().expect("a failing claude gates");
            assert!(why.contains("version"), "{why}");
        }
        let n = std::fs::read_to_string(&calls).unwrap().lines().count();
        assert_eq!(n, 1, "{n} probes for 8 concurrent callers");
    }
}
