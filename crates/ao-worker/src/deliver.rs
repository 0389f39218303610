//! Delivering a repository task: commit whatever the agent changed, push the task branch, and
//! open a pull request when the GitHub repository and a token are known.

use std::path::Path;

use ao_core::task::TaskResult;
use ao_core::worker::Outcome;

use crate::config::WorkerConfig;
use crate::git::{Base, Git};
use crate::github::{self, GitHub, NewPull};
use crate::scrub::Scrubber;

/// The branch a task's work is pushed to.
pub fn branch_name(cfg: &WorkerConfig) -> String {
    format!("agent/{}", cfg.task_id)
}

/// First non-empty line of the prompt, at most 72 characters: the commit and PR title.
pub fn title(prompt: &str) -> String {
    let line = prompt
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("Agent task");
    if line.chars().count() > 72 {
        format!("{}…", line.chars().take(71).collect::<String>())
    } else {
        line.to_owned()
    }
}

/// Commits, pushes and opens the PR; fills `result` (branch, commit, PR URL) and returns the
/// outcome.
pub async fn deliver(
    cfg: &WorkerConfig,
    git: &Git,
    repo: &Path,
    base: &Base,
    scrub: &Scrubber,
    result: &mut TaskResult,
) -> Outcome {
    let branch = branch_name(cfg);
    let title = title(&cfg.spec.prompt);
    let message = format!("{title}\n\nAgent-Orchestrator-Task: {}\n", cfg.task_id);
    let head = match git.commit_all(repo, &message).await {
        Ok(h) => h,
        Err(e) => return failed(result, format!("commit failed: {e}")),
    };
    if head == base.sha {
        tracing::info!("agent made no changes");
        return Outcome::NoChanges;
    }
    if let Err(e) = git.push(repo, &branch).await {
        return failed(result, format!("push failed: {e}"));
    }
    tracing::info!(branch, "pushed");
    result.branch = Some(branch.clone());
    result.commit_sha = Some(head);

    let url = cfg
        .spec
        .repository
        .as_ref()
        .map(|r| r.url.as_str())
        .unwrap_or_default();
    let target = cfg
        .github_repo
        .as_deref()
        .and_then(github::parse_owner_repo)
        .or_else(|| github::parse_repo_url(url));
    let (owner, name, token) = match (target, cfg.github_token.clone()) {
        (Some((owner, name)), Some(token)) => (owner, name, token),
        (target, _) => {
            let why = pr_skipped_reason(target.is_some());
            tracing::info!(task_id = %cfg.task_id, reason = why, "pushed; not opening a pull request");
            result.pr_skipped_reason = Some(why.to_owned());
            return Outcome::Pushed;
        }
    };
    let body = pr_body(cfg, result);
    let gh = GitHub::new(&cfg.github_api_url, token, owner, name, scrub.clone());
    let pr = NewPull {
        title: &title,
        head: &branch,
        base: &base.branch,
        body: &body,
    };
    match gh.open_pull(&pr).await {
        Ok(pr) => {
            tracing::info!(number = pr.number, "pull request opened");
            result.pr_url = Some(pr.html_url);
            Outcome::PrOpened
        }
        Err(e) => failed(result, format!("opening the pull request failed: {e}")),
    }
}

/// Why a pushed branch got no pull request, for `TaskResult::pr_skipped_reason`.
fn pr_skipped_reason(repo_known: bool) -> &'static str {
    if repo_known {
        "no GITHUB_TOKEN was given to the worker, so no pull request could be opened"
    } else {
        "the clone URL is not a GitHub URL and AO_GITHUB_REPO is not set, so the worker does not know where to open a pull request"
    }
}

fn failed(result: &mut TaskResult, error: String) -> Outcome {
    tracing::warn!(error = %error, "delivery failed");
    result.error = Some(error);
    Outcome::DeliveryFailed
}

fn pr_body(cfg: &WorkerConfig, r: &TaskResult) -> String {
    let summary = r.summary.as_deref().unwrap_or("(no summary)");
    let cost = r
        .cost_usd
        .map(|c| format!(" · cost ${c:.4}"))
        .unwrap_or_default();
    let turns = r
        .num_turns
        .map(|n| format!(" · {n} turns"))
        .unwrap_or_default();
    format!(
        "{summary}\n\n---\nOpened by Agent Orchestrator for task `{}`{turns}{cost}.\n",
        cfg.task_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles() {
        assert_eq!(title("\n  Fix the bug \nmore"), "Fix the bug");
        assert_eq!(title(""), "Agent task");
        let long = "x".repeat(100);
        assert_eq!(title(&long).chars().count(), 72);
    }
}
