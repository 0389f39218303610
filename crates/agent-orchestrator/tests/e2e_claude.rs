//! End to end through the orchestrator API with the real Claude Code CLI.
//!
//! Each test starts the `agent-orchestrator serve` binary (local runtime, default agent
//! worker, no `--worker-command`) with `FakeAnthropic`, `FakeGitHub` and a local bare
//! repository standing in for the outside world, submits tasks over HTTP and checks the
//! terminal status and reason, the result, the stored events and logs, the metrics, the
//! processes left behind, and that no secret value reaches anything the orchestrator outputs
//! or stores.
//!
//! Needs the pinned Claude Code CLI (`scripts/install-claude.sh` or `AO_CLAUDE_BIN`); the
//! tests fail (never skip) without it.

mod e2e;

use std::time::{Duration, Instant};

use ao_testkit::git::BareRepo;
use ao_testkit::{FakeAnthropic, FakeGitHub, Reply, Script, Turn, Usage};
use e2e::{Opts, Secrets, Server, metric, processes_mentioning, tool_uses, worker_pid};
use serde_json::{Value, json};

/// Tools the agent may use without asking (server-wide `AO_ALLOWED_TOOLS`).
const ALLOWED_TOOLS: &str = "Write,Bash(ls:*),Bash(env:*)";

/// A task ends within this many seconds (Claude Code start-up included).
const RUN_SECS: u64 = 120;

fn repo_task(bare: &BareRepo, prompt: &str) -> Value {
    json!({"prompt": prompt, "repository": {"url": bare.url(), "ref": "main"}})
}

fn status_reason(t: &Value) -> (&str, &str) {
    (
        t["status"].as_str().unwrap_or(""),
        t["reason"].as_str().unwrap_or(""),
    )
}

/// The fakes and the orchestrator for one test.
struct World {
    anthropic: FakeAnthropic,
    github: FakeGitHub,
    secrets: Secrets,
    server: Server,
}

impl World {
    async fn new(script: Script, max_concurrency: u32) -> World {
        let secrets = Secrets::new();
        let anthropic = FakeAnthropic::start(script.api_key(secrets.anthropic_key.clone())).await;
        let github = FakeGitHub::start(secrets.github_token.clone()).await;
        let server = Server::start(
            &anthropic,
            &github,
            &secrets,
            Opts {
                allowed_tools: ALLOWED_TOOLS,
                max_concurrency,
                worker_user: None,
            },
        );
        World {
            anthropic,
            github,
            secrets,
            server,
        }
    }

    /// Agent requests (script-consuming) that came from this task's Claude Code: its working
    /// directory, stated in the system prompt, lies in the task's folder.
    fn agent_requests_of(&self, id: &str) -> usize {
        self.anthropic
            .agent_requests()
            .iter()
            .filter(|r| r.body.as_ref().is_some_and(|b| b.to_string().contains(id)))
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_task_opens_a_pull_request() {
    let script = Script::new()
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
        // The agent dumps its environment: what the orchestrator stores must stay clean.
        .turn(Turn::new().tool_use(
            "Bash",
            json!({"command": "env", "description": "Show environment"}),
        ))
        .turn(Turn::text_only("Created hello.txt."))
        .when_exhausted(Reply::error(500, "e2e script exhausted"));
    let w = World::new(script, 1).await;
    let bare = BareRepo::create();
    let s = &w.server;

    let id = s
        .submit(repo_task(&bare, "Add a greeting file\n\nPlease."))
        .await;
    let t = s.wait_terminal(&id, RUN_SECS).await;
    assert_eq!(
        status_reason(&t),
        ("succeeded", "pr_opened"),
        "{t:#}\nlogs:\n{}",
        s.logs(&id).await
    );
    assert_eq!(t["exit_code"], 0);

    // The branch holds the agent's file.
    let branch = format!("agent/{id}");
    assert_eq!(
        bare.read_file(&branch, "hello.txt").as_deref(),
        Some("hello from the agent\n")
    );
    assert_eq!(bare.branches().len(), 2, "{:?}", bare.branches());

    // FakeGitHub got the pull request, authenticated with the orchestrator's token.
    let pulls = w.github.pulls();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    let pr = &pulls[0];
    assert_eq!((pr.owner.as_str(), pr.repo.as_str()), ("owner", "repo"));
    assert_eq!(
        (pr.head.as_str(), pr.base.as_str()),
        (branch.as_str(), "main")
    );
    let post = w
        .github
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .expect("POST pulls");
    assert_eq!(
        post.header("authorization"),
        Some(format!("Bearer {}", w.secrets.github_token).as_str())
    );

    // Claude Code talked to the fake with the orchestrator's key: 4 agent turns.
    let agent = w.anthropic.agent_requests();
    assert_eq!(agent.len(), 4);
    assert!(
        agent
            .iter()
            .all(|r| r.header("x-api-key") == Some(w.secrets.anthropic_key.as_str()))
    );
    assert_eq!(w.anthropic.replies_left(), 0);

    // The result as the API shows it.
    let r = &t["result"];
    assert_eq!(r["outcome"], "pr_opened");
    assert_eq!(r["pr_url"].as_str(), Some(pr.html_url.as_str()));
    assert_eq!(r["branch"].as_str(), Some(branch.as_str()));
    assert_eq!(r["commit_sha"].as_str(), bare.rev(&branch).as_deref());
    assert!(r["cost_usd"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["input_tokens"].as_u64().unwrap() >= 1_200 + 150, "{r}");
    assert!(r["output_tokens"].as_u64().unwrap() >= 40, "{r}");
    assert_eq!(r["num_turns"].as_u64(), Some(4), "{r}");
    assert!(
        r["session_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{r}"
    );
    assert_eq!(r["summary"], "Created hello.txt.");
    let history: Vec<&str> = t["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["to"].as_str())
        .collect();
    assert_eq!(history.first(), Some(&"queued"), "{history:?}");
    assert_eq!(history.last(), Some(&"succeeded"), "{history:?}");
    assert!(history.contains(&"running"), "{history:?}");

    // Stored events replay: contiguous ids, the tool calls in order, the agent's result.
    let events = s.events(&id).await;
    let (end, stored) = events.split_last().expect("events");
    assert_eq!(end.event, "end");
    assert_eq!(
        (end.data["status"].as_str(), end.data["reason"].as_str()),
        (Some("succeeded"), Some("pr_opened"))
    );
    let ids: Vec<i64> = stored.iter().map(|e| e.id.expect("event id")).collect();
    assert_eq!(ids, (1..=stored.len() as i64).collect::<Vec<_>>());
    assert!(
        stored
            .iter()
            .all(|e| e.data["type"].as_str() == Some(e.event.as_str()))
    );
    assert_eq!(tool_uses(stored), ["Write", "Bash", "Bash"]);
    let pos = |pred: &dyn Fn(&e2e::Sse) -> bool| stored.iter().position(pred);
    let first_tool =
        pos(&|e| e.event == "assistant" && e.data.to_string().contains("\"tool_use\"")).unwrap();
    let result_at = pos(&|e| e.event == "result").expect("a result event");
    assert!(first_tool < result_at);
    assert!(
        stored
            .iter()
            .any(|e| e.event == "system" && e.data["subtype"] == "init")
    );
    let phases: Vec<&str> = stored
        .iter()
        .filter(|e| e.event == "worker")
        .filter_map(|e| e.data["phase"].as_str())
        .collect();
    assert_eq!(phases, ["clone", "agent", "deliver", "done", "result"]);
    // The agent really ran `env`, and what came back was scrubbed.
    let all = serde_json::to_string(&stored.iter().map(|e| &e.data).collect::<Vec<_>>()).unwrap();
    assert!(
        all.contains("ANTHROPIC_API_KEY=[REDACTED]"),
        "env output not in the events"
    );
    assert!(
        !all.contains("GITHUB_TOKEN="),
        "GITHUB_TOKEN reached the agent's environment"
    );
    assert!(
        !all.contains("AO_CALLBACK_TOKEN="),
        "the callback token reached the agent's environment"
    );

    // Logs have the worker's output.
    let logs = s.logs(&id).await;
    assert!(logs.lines().count() > 5, "{logs}");
    assert!(logs.contains(&id), "{logs}");

    // Metrics count the outcome, the cost and the tokens.
    let m = s.metrics().await;
    assert_eq!(
        metric(&m, r#"ao_task_outcomes_total{outcome="pr_opened"}"#),
        Some(1.0),
        "{m}"
    );
    assert!(
        metric(&m, "ao_agent_cost_usd_total").is_some_and(|c| c > 0.0),
        "{m}"
    );
    assert!(
        metric(&m, r#"ao_agent_tokens_total{kind="input"}"#).is_some_and(|c| c >= 1_350.0),
        "{m}"
    );
    assert!(
        metric(&m, r#"ao_agent_tokens_total{kind="output"}"#).is_some_and(|c| c >= 40.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, r#"ao_tasks_finished_total{status="succeeded"}"#),
        Some(1.0),
        "{m}"
    );

    eprintln!("callback tokens observed: {}", s.callback_tokens());
    s.assert_no_secret_leaks().await;
}

/// Runs one task on `w` with `replies` queued for it; returns the finished task.
async fn run_case(w: &World, body: Value, replies: Vec<Reply>) -> Value {
    assert_eq!(
        w.anthropic.replies_left(),
        0,
        "script left over from the previous case"
    );
    for r in replies {
        w.anthropic.push(r);
    }
    let id = w.server.submit(body).await;
    w.server.wait_terminal(&id, RUN_SECS).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_runs_end_with_the_right_reason() {
    // One server, one task at a time; each case queues its own replies. A turn nobody
    // scripted gets an API error, so a drifting script cannot go unnoticed.
    let w = World::new(
        Script::new().when_exhausted(Reply::error(500, "e2e script exhausted")),
        1,
    )
    .await;
    let bare = BareRepo::create();
    let rejecting = BareRepo::create();
    rejecting.reject_pushes();
    let s = &w.server;
    let started = Instant::now();

    // No changes.
    let t = run_case(
        &w,
        repo_task(&bare, "Check the repo"),
        vec![
            Turn::new()
                .tool_use(
                    "Bash",
                    json!({"command": "ls", "description": "List files"}),
                )
                .into(),
            Turn::text_only("Nothing to change.").into(),
        ],
    )
    .await;
    assert_eq!(status_reason(&t), ("failed", "no_changes"), "{t:#}");
    assert_eq!(t["result"]["outcome"], "no_changes");
    assert_eq!(t["result"]["summary"], "Nothing to change.");
    assert_eq!(w.anthropic.replies_left(), 0);

    // The API answers with an error.
    let t = run_case(
        &w,
        repo_task(&bare, "Do something"),
        vec![Reply::error(400, "prompt is too long")],
    )
    .await;
    assert_eq!(status_reason(&t), ("failed", "agent_error"), "{t:#}");
    assert!(
        t["result"]["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{t:#}"
    );

    // A tool call outside the allowed tools is denied.
    let t = run_case(
        &w,
        repo_task(&bare, "Fetch the page"),
        vec![
            Turn::new()
                .tool_use("Bash", json!({"command": "curl -s http://127.0.0.1:9/", "description": "Fetch a page"}))
                .into(),
            Turn::text_only("I could not fetch it.").into(),
        ],
    )
    .await;
    assert_eq!(status_reason(&t), ("failed", "permission_denied"), "{t:#}");
    assert!(
        t["result"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("Bash")),
        "{t:#}"
    );
    assert_eq!(w.anthropic.replies_left(), 0);

    // The push is rejected.
    let t = run_case(
        &w,
        repo_task(&rejecting, "Add a greeting file"),
        vec![
            Turn::new()
                .tool_use(
                    "Write",
                    json!({"file_path": "{cwd}/hello.txt", "content": "hello\n"}),
                )
                .into(),
            Turn::text_only("Created hello.txt.").into(),
        ],
    )
    .await;
    assert_eq!(status_reason(&t), ("failed", "delivery_failed"), "{t:#}");
    assert!(
        t["result"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("push failed")),
        "{t:#}"
    );
    assert_eq!(rejecting.branches(), ["main"]);

    // The budget is exceeded: the worker stops Claude Code before its next turn.
    let mut body = repo_task(&bare, "Expensive");
    body["max_budget_usd"] = json!(0.5);
    let t = run_case(
        &w,
        body,
        vec![
            Turn::new()
                .tool_use(
                    "Bash",
                    json!({"command": "ls", "description": "List files"}),
                )
                .usage(Usage::new(2_000_000, 100))
                .into(),
        ],
    )
    .await;
    assert_eq!(status_reason(&t), ("failed", "budget_exceeded"), "{t:#}");
    assert!(t["result"]["cost_usd"].as_f64().unwrap() > 0.5, "{t:#}");
    // Cost and tokens are one account (not Claude Code's cost next to a streamed snapshot).
    assert_eq!(t["result"]["output_tokens"], 100, "{t:#}");

    // The repository cannot be checked out at that ref: a workspace failure, before any turn.
    let mut body = repo_task(&bare, "Anything");
    body["repository"]["ref"] = json!("no-such-branch");
    let t = run_case(&w, body, vec![]).await;
    assert_eq!(status_reason(&t), ("failed", "clone_failed"), "{t:#}");
    assert_eq!(t["result"]["outcome"], "clone_failed", "{t:#}");

    // Nothing was delivered by any of them.
    assert_eq!(bare.branches(), ["main"]);
    assert!(w.github.pulls().is_empty());
    let m = s.metrics().await;
    for outcome in [
        "no_changes",
        "agent_error",
        "permission_denied",
        "delivery_failed",
        "budget_exceeded",
        "clone_failed",
    ] {
        let series = format!("ao_task_outcomes_total{{outcome=\"{outcome}\"}}");
        assert_eq!(metric(&m, &series), Some(1.0), "{series}\n{m}");
    }
    assert_eq!(
        metric(&m, r#"ao_tasks_finished_total{status="failed"}"#),
        Some(6.0),
        "{m}"
    );
    eprintln!(
        "failure cases took {:?}; callback tokens observed: {}",
        started.elapsed(),
        s.callback_tokens()
    );

    s.assert_no_secret_leaks().await;
}

/// Waits (bounded) until no live process mentions `id`; returns what was still there at the
/// first look.
async fn wait_no_processes(id: &str, secs: u64) -> Vec<String> {
    let first = processes_mentioning(id);
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let now = processes_mentioning(id);
        if now.is_empty() {
            return first;
        }
        assert!(
            Instant::now() < deadline,
            "processes of task {id} still running: {now:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_timeout_stop_a_stalled_agent() {
    // Every agent turn stalls: the stream starts and then nothing more comes.
    let w = World::new(Script::new().when_exhausted(Reply::Stall), 2).await;
    let bare = BareRepo::create();
    let s = &w.server;

    let cancelled = s.submit(repo_task(&bare, "Wait for the model")).await;
    let mut body = repo_task(&bare, "Wait for the model too");
    body["timeout_seconds"] = json!(3);
    let timed_out = s.submit(body).await;

    // Cancel once Claude Code is stuck waiting on the API.
    // (`queued` → `starting` → `running`.)
    let t = s
        .wait_until(&cancelled, RUN_SECS, |st| {
            st == "running" || e2e::TERMINAL.contains(&st)
        })
        .await;
    assert_eq!(t["status"], "running", "{t:#}");
    let deadline = Instant::now() + Duration::from_secs(RUN_SECS);
    while w.agent_requests_of(&cancelled) == 0 {
        let t = s.wait_until(&cancelled, 1, |_| true).await;
        assert_eq!(t["status"], "running", "{t:#}");
        assert!(Instant::now() < deadline, "claude never called the API");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let pid = worker_pid(&s.task(&cancelled).await).expect("worker pid");
    assert!(e2e::alive(pid), "worker {pid} is not running");
    assert!(
        !processes_mentioning(&cancelled).is_empty(),
        "no process for the running task?"
    );
    let asked = Instant::now();
    let (code, v) = s.cancel(&cancelled).await;
    assert_eq!(code, 202, "{v}");
    let t = s.wait_terminal(&cancelled, 60).await;
    let took = asked.elapsed();
    assert_eq!(
        status_reason(&t),
        ("cancelled", "cancelled_by_user"),
        "{t:#}"
    );
    // The result's outcome agrees with the reason.
    assert_eq!(t["result"]["outcome"], "cancelled", "{t:#}");
    assert!(
        !e2e::alive(pid),
        "worker {pid} still running after the task was cancelled"
    );
    let lingering = wait_no_processes(&cancelled, 15).await;
    assert!(
        lingering.is_empty(),
        "processes outlived the cancelled task: {lingering:#?}"
    );
    eprintln!("cancel took {took:?}");

    // The deadline stops the other one.
    let t = s.wait_terminal(&timed_out, RUN_SECS).await;
    assert_eq!(
        status_reason(&t),
        ("timed_out", "deadline_exceeded"),
        "{t:#}"
    );
    assert_eq!(t["result"]["outcome"], "timed_out", "{t:#}");
    // Normally Claude Code is stalled on the API by then (not asserted: under heavy load its
    // start-up alone may take the 3 s).
    eprintln!(
        "timed-out task made {} API request(s) before its deadline",
        w.agent_requests_of(&timed_out)
    );
    if let Some(pid) = worker_pid(&t) {
        assert!(
            !e2e::alive(pid),
            "worker {pid} still running after the timeout"
        );
    }
    let lingering = wait_no_processes(&timed_out, 15).await;
    assert!(
        lingering.is_empty(),
        "processes outlived the timed-out task: {lingering:#?}"
    );

    // Neither delivered anything.
    assert_eq!(bare.branches(), ["main"]);
    assert!(w.github.pulls().is_empty());
    let m = s.metrics().await;
    assert_eq!(
        metric(&m, r#"ao_tasks_finished_total{status="cancelled"}"#),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        metric(&m, r#"ao_tasks_finished_total{status="timed_out"}"#),
        Some(1.0),
        "{m}"
    );

    // The stalled worker lived long enough to read its callback token from /proc.
    assert!(s.callback_tokens() >= 1, "callback token never observed");
    s.assert_no_secret_leaks().await;
}
