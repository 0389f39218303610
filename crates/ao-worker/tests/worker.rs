//! End-to-end worker runs: the real Claude Code CLI against `FakeAnthropic`, real git against a
//! local bare repository, `FakeGitHub`, and a fake orchestrator callback receiver.

mod common;

use ao_testkit::{Reply, Script, Turn, Usage};
use ao_worker::Outcome;
use common::{World, tool_uses};
use serde_json::json;

fn write_then_ls() -> Script {
    Script::new()
        .turn(
            Turn::new()
                .text("I'll create the file.")
                .tool_use(
                    "Write",
                    json!({"file_path": "{cwd}/hello.txt", "content": "hello from the agent\n"}),
                )
                .usage(Usage::new(1_200, 40).with_cache(100, 50)),
        )
        .turn(Turn::new().tool_use(
            "Bash",
            json!({"command": "ls", "description": "List files"}),
        ))
        .turn(Turn::text_only("Created hello.txt."))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_task_opens_a_pull_request() {
    let w = World::new(write_then_ls()).await;
    let mut cfg = w.config(w.spec("Add a greeting file\n\nPlease.", true));
    cfg.allowed_tools = Some("Write,Bash(ls:*)".into());
    let report = ao_worker::run(cfg).await.unwrap();
    let r = &report.result;
    assert_eq!(report.outcome, Outcome::PrOpened, "{r:?}");
    assert_eq!(report.exit_code(), 0);

    let branch = format!("agent/{}", w.task_id);
    assert_eq!(
        w.bare.read_file(&branch, "hello.txt").as_deref(),
        Some("hello from the agent\n")
    );
    assert_eq!(r.branch.as_deref(), Some(branch.as_str()));
    assert_eq!(r.commit_sha, w.bare.rev(&branch));
    assert_eq!(
        w.bare.log1(&branch, "%an <%ae>|%s"),
        "Agent Orchestrator <agent@localhost>|Add a greeting file"
    );
    assert!(w.bare.log1(&branch, "%b").contains(&w.task_id.to_string()));

    let pulls = w.github.pulls();
    assert_eq!(pulls.len(), 1);
    assert_eq!(
        (pulls[0].head.as_str(), pulls[0].base.as_str()),
        (branch.as_str(), "main")
    );
    assert_eq!(
        (pulls[0].owner.as_str(), pulls[0].repo.as_str()),
        ("acme", "widgets")
    );
    assert_eq!(pulls[0].title, "Add a greeting file");
    assert!(pulls[0].body.contains("Created hello.txt."));
    assert_eq!(r.pr_url.as_deref(), Some(pulls[0].html_url.as_str()));
    let req = &w.github.requests()[0];
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {}", w.github_token).as_str())
    );

    // Cost and tokens: 3 agent turns; input counts cache tokens too.
    assert!(r.cost_usd.unwrap() > 0.0);
    assert!(r.input_tokens.unwrap() >= 1_200 + 150 + 2_000, "{r:?}");
    assert!(r.output_tokens.unwrap() >= 40);
    assert_eq!(r.num_turns, Some(3));
    assert!(r.session_id.is_some());
    assert_eq!(r.summary.as_deref(), Some("Created hello.txt."));

    // Claude Code authenticated with our key.
    let agent = w.anthropic.agent_requests();
    assert_eq!(agent.len(), 3);
    assert!(
        agent
            .iter()
            .all(|q| q.header("x-api-key") == Some(w.anthropic_key.as_str()))
    );

    // Events arrived in order, contiguous, with the tool calls and the worker phases.
    let events = w.callback.events();
    let got = w.callback.got.lock().unwrap();
    assert_eq!((got.gaps, got.bad_auth), (0, 0));
    drop(got);
    assert_eq!(tool_uses(&events), ["Write", "Bash"]);
    let phases: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "worker")
        .filter_map(|e| e["phase"].as_str())
        .collect();
    assert_eq!(phases, ["clone", "agent", "deliver", "done", "result"]);
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "system" && e["subtype"] == "init")
    );
    assert!(events.iter().any(|e| e["type"] == "result"));
    assert_eq!(events.len() as u64, report.events);
    let result = w.callback.result().expect("result reported");
    assert_eq!(result["outcome"], "pr_opened");
    assert_eq!(result["pr_url"], r.pr_url.clone().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_pull_request_is_reused() {
    let w = World::new(write_then_ls()).await;
    let branch = format!("agent/{}", w.task_id);
    let existing = w.github.insert_pull("acme", "widgets", &branch, "main");
    let mut cfg = w.config(w.spec("Add a greeting file", true));
    cfg.allowed_tools = Some("Write,Bash(ls:*)".into());
    let report = ao_worker::run(cfg).await.unwrap();
    assert_eq!(report.outcome, Outcome::PrOpened, "{:?}", report.result);
    assert_eq!(
        report.result.pr_url.as_deref(),
        Some(existing.html_url.as_str())
    );
    assert!(w.github.requests().iter().any(|r| r.method == "GET"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_changes() {
    let script = Script::new()
        .turn(Turn::new().tool_use(
            "Bash",
            json!({"command": "ls", "description": "List files"}),
        ))
        .turn(Turn::text_only("Nothing to change."));
    let w = World::new(script).await;
    let mut cfg = w.config(w.spec("Check the repo", true));
    cfg.allowed_tools = Some("Bash(ls:*)".into());
    let report = ao_worker::run(cfg).await.unwrap();
    assert_eq!(report.outcome, Outcome::NoChanges, "{:?}", report.result);
    assert_eq!(report.exit_code(), 1);
    assert_eq!(w.bare.branches(), ["main"]);
    assert!(w.github.pulls().is_empty());
    assert_eq!(w.callback.result().unwrap()["outcome"], "no_changes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_error_is_agent_error() {
    let script = Script::new()
        .error(400, "prompt is too long")
        .when_exhausted(Reply::error(500, "boom"));
    let w = World::new(script).await;
    let report = ao_worker::run(w.config(w.spec("Do something", true)))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::AgentError, "{:?}", report.result);
    assert!(report.result.error.is_some());
    assert_eq!(w.bare.branches(), ["main"]);
    assert_eq!(w.callback.result().unwrap()["outcome"], "agent_error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_is_agent_error() {
    let w = World::new(Script::new().when_exhausted(Reply::error(529, "Overloaded"))).await;
    let report = ao_worker::run(w.config(w.spec("Do something", false)))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::AgentError, "{:?}", report.result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_tool_is_permission_denied() {
    let script = Script::new()
        .turn(Turn::new().tool_use(
            "Bash",
            json!({"command": "curl -s http://127.0.0.1:9/", "description": "Fetch a page"}),
        ))
        .turn(Turn::text_only("I could not fetch it."));
    let w = World::new(script).await;
    let mut cfg = w.config(w.spec("Fetch the page", true));
    cfg.allowed_tools = Some("Bash(ls:*)".into());
    let report = ao_worker::run(cfg).await.unwrap();
    assert_eq!(
        report.outcome,
        Outcome::PermissionDenied,
        "{:?}",
        report.result
    );
    assert!(report.result.error.as_deref().unwrap().contains("Bash"));
    assert_eq!(w.bare.branches(), ["main"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_push_is_delivery_failed() {
    let w = World::new(write_then_ls()).await;
    w.bare.reject_pushes();
    let mut cfg = w.config(w.spec("Add a greeting file", true));
    cfg.allowed_tools = Some("Write,Bash(ls:*)".into());
    let report = ao_worker::run(cfg).await.unwrap();
    assert_eq!(
        report.outcome,
        Outcome::DeliveryFailed,
        "{:?}",
        report.result
    );
    assert!(
        report
            .result
            .error
            .as_deref()
            .unwrap()
            .contains("push failed")
    );
    assert!(w.github.pulls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_pull_request_is_delivery_failed() {
    let w = World::new(write_then_ls()).await;
    w.github.fail_pull_create(Some(403));
    let mut cfg = w.config(w.spec("Add a greeting file", true));
    cfg.allowed_tools = Some("Write,Bash(ls:*)".into());
    let report = ao_worker::run(cfg).await.unwrap();
    assert_eq!(
        report.outcome,
        Outcome::DeliveryFailed,
        "{:?}",
        report.result
    );
    // The branch was pushed anyway.
    assert!(report.result.branch.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_github_repo_is_pushed() {
    let w = World::new(write_then_ls()).await;
    let mut cfg = w.config(w.spec("Add a greeting file", true));
    cfg.allowed_tools = Some("Write,Bash(ls:*)".into());
    cfg.github_repo = None;
    let report = ao_worker::run(cfg).await.unwrap();
    assert_eq!(report.outcome, Outcome::Pushed, "{:?}", report.result);
    assert_eq!(report.exit_code(), 0);
    // The result says why there is no pull request.
    let why = w.callback.result().unwrap()["pr_skipped_reason"].clone();
    assert!(
        why.as_str().is_some_and(|s| s.contains("AO_GITHUB_REPO")),
        "{why}"
    );
    assert!(report.result.pr_url.is_none());
    assert!(
        w.bare
            .files(&format!("agent/{}", w.task_id))
            .contains(&"hello.txt".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_exceeded() {
    let script = Script::new()
        .turn(
            Turn::new()
                .tool_use(
                    "Bash",
                    json!({"command": "ls", "description": "List files"}),
                )
                .usage(Usage::new(2_000_000, 100)),
        )
        .turn(Turn::text_only("Done."));
    let w = World::new(script).await;
    let mut spec = w.spec("Expensive", true);
    spec.max_budget_usd = Some(0.5);
    let mut cfg = w.config(spec);
    cfg.allowed_tools = Some("Bash(ls:*)".into());
    let report = ao_worker::run(cfg).await.unwrap();
    assert_eq!(
        report.outcome,
        Outcome::BudgetExceeded,
        "{:?}",
        report.result
    );
    let r = &report.result;
    assert!(r.cost_usd.unwrap() > 0.5);
    // Cost and tokens are one account: the cost is the price of the tokens reported
    // (Claude Code stopped itself here and reported zero `usage`; the 100 output tokens are
    // in its per-model totals).
    assert_eq!(
        (r.input_tokens, r.output_tokens),
        (Some(2_000_000), Some(100)),
        "{r:?}"
    );
    let tokens = ao_worker::cost::TokenUsage {
        input_tokens: r.input_tokens.unwrap(),
        output_tokens: r.output_tokens.unwrap(),
        ..Default::default()
    };
    let model = w.anthropic.agent_requests()[0].body.as_ref().unwrap()["model"]
        .as_str()
        .unwrap()
        .to_owned();
    let priced = ao_worker::cost::estimate(&model, &tokens);
    assert!(
        (r.cost_usd.unwrap() - priced).abs() < 1e-6,
        "{r:?} vs {priced}"
    );
    assert_eq!(w.bare.branches(), ["main"]);
    // Stopped before the next turn was requested.
    assert_eq!(w.anthropic.replies_left(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn question_is_answered() {
    let w = World::new(Script::new().turn(Turn::text_only("The answer is 42."))).await;
    let report = ao_worker::run(w.config(w.spec("What is the answer?", false)))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Answered, "{:?}", report.result);
    assert_eq!(report.result.summary.as_deref(), Some("The answer is 42."));
    assert!(report.result.branch.is_none());
    let result = w.callback.result().unwrap();
    assert_eq!(result["outcome"], "answered");
    assert_eq!(result["summary"], "The answer is 42.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clone_failure_is_clone_failed() {
    let w = World::new(Script::new()).await;
    let mut spec = w.spec("Anything", true);
    spec.repository.as_mut().unwrap().git_ref = Some("no-such-branch".into());
    let report = ao_worker::run(w.config(spec)).await.unwrap();
    assert_eq!(report.outcome, Outcome::CloneFailed, "{:?}", report.result);
    assert_eq!(w.callback.result().unwrap()["outcome"], "clone_failed");
    assert!(
        report
            .result
            .error
            .as_deref()
            .unwrap()
            .contains("clone failed")
    );
    assert!(w.anthropic.agent_requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_outages_are_retried() {
    let w = World::new(Script::new().turn(Turn::text_only("Yes."))).await;
    w.callback.got.lock().unwrap().fail_next = 3;
    let report = ao_worker::run(w.config(w.spec("Question?", false)))
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Answered);
    let got = w.callback.got.lock().unwrap();
    assert_eq!(got.gaps, 0);
    assert_eq!(
        got.events.len() as u64,
        report.events,
        "every event arrived exactly once"
    );
    assert_eq!(got.results.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_callback_does_not_stop_the_run() {
    let w = World::new(Script::new().turn(Turn::text_only("Yes."))).await;
    let mut cfg = w.config(w.spec("Question?", false));
    cfg.callback.as_mut().unwrap().token = "wrong-token-value".to_owned().into();
    let report = ao_worker::run(cfg).await.unwrap();
    assert_eq!(report.outcome, Outcome::Answered);
    let got = w.callback.got.lock().unwrap();
    assert!(got.events.is_empty() && got.results.is_empty());
    // One refused event batch (then forwarding stops) and one refused result.
    assert_eq!(got.bad_auth, 2);
}
