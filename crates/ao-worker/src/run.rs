//! One task from start to finish: workspace, agent, delivery, and reporting the result.

use std::path::PathBuf;
use std::time::Duration;

use ao_core::task::TaskResult;
use ao_core::worker::Outcome;
use serde_json::json;

use crate::agent::{self, AgentRun};
use crate::callback::{self, Callback};
use crate::claude;
use crate::config::WorkerConfig;
use crate::deliver;
use crate::events::EventSink;
use crate::git::{Base, Git};
use crate::outcome;
use crate::scrub::Scrubber;

/// Summary length limit in the result.
const MAX_SUMMARY: usize = 4_000;
/// How long the event flush and result report may take once the worker was told to stop.
const STOP_FLUSH: Duration = Duration::from_secs(2);

/// What a run ended with.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub outcome: Outcome,
    /// The result as reported to the orchestrator.
    pub result: TaskResult,
    /// True if the worker was told to stop (e.g. SIGTERM) during the run.
    pub stopped: bool,
    /// Number of events emitted.
    pub events: u64,
}

impl RunReport {
    /// 0 for a delivered result, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        self.outcome.exit_code()
    }
}

/// Runs one task. Infrastructure problems inside the task become outcomes; only a failure to
/// even create the workspace is an `Err`.
pub async fn run(cfg: WorkerConfig) -> anyhow::Result<RunReport> {
    let scrub = Scrubber::new([
        cfg.github_token.as_ref(),
        cfg.anthropic_api_key.as_ref(),
        cfg.callback.as_ref().map(|c| &c.token),
    ]);
    let (sink, rx) = EventSink::new(cfg.task_id.to_string(), cfg.print_events);
    let cb = cfg
        .callback
        .as_ref()
        .map(|c| Callback::new(c, cfg.task_id, cfg.callback_retry_budget));
    let sender = tokio::spawn(callback::run_sender(cb.clone(), rx));
    std::fs::create_dir_all(&cfg.workspace)?;
    tracing::info!(task_id = %cfg.task_id, repository = cfg.spec.repository.is_some(), "worker starting");

    let mut result = TaskResult::new(Outcome::AgentError);
    let outcome = execute(&cfg, &sink, &scrub, &mut result).await;
    result.outcome = outcome;
    result.error = result
        .error
        .take()
        .map(|e| crate::truncate(&scrub.scrub(&e), 1_000));
    let stopped = cfg.stop.is_cancelled();
    sink.phase("done", json!({"outcome": outcome.as_str()}));
    let events = sink.emit(json!({"type": "worker", "phase": "result", "result": &result}));
    sink.close();

    let flush = if stopped {
        STOP_FLUSH
    } else {
        cfg.callback_retry_budget + Duration::from_secs(5)
    };
    // Once stopped, flushing events and reporting the result share one short deadline.
    let deadline = tokio::time::Instant::now() + flush;
    if tokio::time::timeout_at(deadline, sender).await.is_err() {
        tracing::warn!("event flush timed out");
    }
    if let Some(cb) = &cb {
        let deadline = if stopped {
            deadline
        } else {
            tokio::time::Instant::now() + flush
        };
        match tokio::time::timeout_at(deadline, cb.put_result(&result)).await {
            Ok(Ok(())) => tracing::info!(outcome = %outcome, "result reported"),
            Ok(Err(e)) => tracing::warn!(error = %e, "result not reported"),
            Err(_) => tracing::warn!("result report timed out"),
        }
    }
    tracing::info!(outcome = %outcome, cost_usd = result.cost_usd, "worker finished");
    Ok(RunReport {
        outcome,
        result,
        stopped,
        events,
    })
}

async fn execute(
    cfg: &WorkerConfig,
    sink: &EventSink,
    scrub: &Scrubber,
    result: &mut TaskResult,
) -> Outcome {
    // Before any clone: a worker whose agent cannot start says so, and what to do about it.
    let path = std::env::var_os("PATH");
    let bin = match claude::locate(&cfg.claude_bin, path.as_deref()).await {
        Ok(found) => found.bin,
        Err(e) => {
            tracing::warn!(task_id = %cfg.task_id, error = %e, "Claude Code is unavailable");
            result.error = Some(format!("{e}; {}", e.fix()));
            return Outcome::AgentUnavailable;
        }
    };
    let mut repo_state: Option<(Git, PathBuf, Base)> = None;
    if let Some(repo) = &cfg.spec.repository {
        sink.phase("clone", json!({}));
        let git = Git::new(
            cfg.home.clone(),
            (cfg.git_author_name.clone(), cfg.git_author_email.clone()),
            &repo.url,
            cfg.github_token.as_ref(),
            scrub.clone(),
        );
        let dir = cfg.workspace.join("repo");
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        let branch = deliver::branch_name(cfg);
        let prepared = tokio::select! {
            r = async {
                git.clone(&repo.url, &dir).await?;
                git.start_branch(&dir, repo.git_ref.as_deref(), &branch).await
            } => r,
            _ = cfg.stop.cancelled() => {
                result.error = Some(outcome::STOPPED.into());
                return Outcome::Stopped;
            }
        };
        match prepared {
            Ok(base) => {
                tracing::info!(base = %base.branch, "repository prepared");
                repo_state = Some((git, dir, base));
            }
            Err(e) => {
                tracing::warn!(task_id = %cfg.task_id, error = %e, "preparing the repository failed");
                result.error = Some(format!("clone failed: {e}"));
                return Outcome::CloneFailed;
            }
        }
    }

    let cwd = repo_state
        .as_ref()
        .map_or_else(|| cfg.workspace.clone(), |(_, d, _)| d.clone());
    sink.phase("agent", json!({}));
    let run = match agent::run(cfg, &bin, &cwd, sink, scrub).await {
        Ok(r) => r,
        Err(e) => {
            result.error = Some(e.to_string());
            return if e.is_unavailable() {
                Outcome::AgentUnavailable
            } else {
                Outcome::AgentError
            };
        }
    };
    fill_from_run(result, &run, scrub);
    if let Err((outcome, error)) = outcome::judge(&run, cfg.spec.max_budget_usd) {
        tracing::warn!(outcome = %outcome, "agent run did not succeed");
        result.error = Some(error);
        return outcome;
    }
    match repo_state {
        None => Outcome::Answered,
        Some((git, dir, base)) => {
            sink.phase("deliver", json!({}));
            let mut delivery = Box::pin(deliver::deliver(cfg, &git, &dir, &base, scrub, result));
            let finished = tokio::select! {
                o = &mut delivery => Some(o),
                _ = cfg.stop.cancelled() => tokio::time::timeout(STOP_FLUSH, &mut delivery).await.ok(),
            };
            drop(delivery); // kills any git still running
            finished.unwrap_or_else(|| {
                result.error = Some(format!("{} (during delivery)", outcome::STOPPED));
                Outcome::Stopped
            })
        }
    }
}

fn fill_from_run(result: &mut TaskResult, run: &AgentRun, scrub: &Scrubber) {
    let t = &run.tracker;
    let r = t.result.as_ref();
    result.summary = r
        .and_then(|r| r.text.as_deref())
        .map(|s| crate::truncate(&scrub.scrub(s), MAX_SUMMARY));
    result.session_id = r
        .and_then(|r| r.session_id.clone())
        .or_else(|| t.session_id.clone());
    result.num_turns = r.and_then(|r| r.num_turns);
    if t.saw_usage() {
        let account = t.account();
        result.cost_usd = Some(account.cost_usd);
        result.input_tokens = Some(account.usage.total_input());
        result.output_tokens = Some(account.usage.output_tokens);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;
    use crate::agent::EndedBy;
    use crate::stream::{RunTracker, parse_line};

    fn run_of(lines: &[&str]) -> AgentRun {
        let mut tracker = RunTracker::default();
        for l in lines {
            tracker.observe(&parse_line(l));
        }
        AgentRun {
            tracker,
            status: Some(std::process::ExitStatus::from_raw(0)),
            ended_by: EndedBy::Exit,
            stderr_tail: None,
        }
    }

    const BIG_START: &str = r#"{"type":"assistant","message":{"id":"m1","model":"claude-opus-4-1","content":[],"usage":{"input_tokens":900000,"output_tokens":1}}}"#;

    #[test]
    fn cost_and_tokens_are_reported_from_one_account() {
        // Claude Code's result: its total cost and the usage that cost is for.
        let done = r#"{"type":"result","subtype":"success","result":"ok","total_cost_usd":14.5,"usage":{"input_tokens":800000,"output_tokens":35000}}"#;
        let mut r = TaskResult::new(Outcome::Answered);
        fill_from_run(&mut r, &run_of(&[BIG_START, done]), &Scrubber::new([]));
        assert_eq!(
            (r.cost_usd, r.input_tokens, r.output_tokens),
            (Some(14.5), Some(800_000), Some(35_000))
        );
        // Stopped before a result: the streamed tokens and the cost of exactly those tokens.
        let mut r = TaskResult::new(Outcome::BudgetExceeded);
        fill_from_run(&mut r, &run_of(&[BIG_START]), &Scrubber::new([]));
        let usage = crate::cost::TokenUsage {
            input_tokens: 900_000,
            output_tokens: 1,
            ..Default::default()
        };
        assert_eq!((r.input_tokens, r.output_tokens), (Some(900_000), Some(1)));
        let priced = crate::cost::estimate("claude-opus-4-1", &usage);
        assert!((r.cost_usd.unwrap() - priced).abs() < 1e-9, "{r:?}");
    }
}
