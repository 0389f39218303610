//! The fakes behave like the real services in the ways the worker relies on.

use ao_testkit::git::BareRepo;
use ao_testkit::{FakeAnthropic, FakeGitHub, Reply, Script, Turn};
use serde_json::{Value, json};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn gh(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
) -> reqwest::RequestBuilder {
    c.request(method, url)
        .bearer_auth(token)
        .header("Accept", "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .header("User-Agent", "test")
}

#[tokio::test]
async fn github_pulls_lifecycle() {
    let fake = FakeGitHub::start("tok").await;
    let c = client();
    let url = format!("{}/repos/o/r/pulls", fake.api_url());
    let body = json!({"title": "T", "head": "agent/1", "base": "main", "body": "B"});

    let r = gh(&c, reqwest::Method::POST, url.clone(), "bad")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(&url)
        .bearer_auth("tok")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "missing User-Agent");

    let r = gh(&c, reqwest::Method::POST, url.clone(), "tok")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let pr: Value = r.json().await.unwrap();
    assert_eq!(
        (
            pr["number"].as_u64(),
            pr["head"]["ref"].as_str(),
            pr["base"]["ref"].as_str()
        ),
        (Some(1), Some("agent/1"), Some("main"))
    );
    assert_eq!(pr["html_url"], "https://github.com/o/r/pull/1");

    let r = gh(&c, reqwest::Method::POST, url.clone(), "tok")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );

    let r = gh(
        &c,
        reqwest::Method::GET,
        format!("{url}?head=o%3Aagent%2F1&state=open"),
        "tok",
    )
    .send()
    .await
    .unwrap();
    let list: Value = r.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);

    fake.fail_pull_create(Some(500));
    let other = json!({"title": "T", "head": "agent/2", "base": "main"});
    let r = gh(&c, reqwest::Method::POST, url, "tok")
        .json(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(fake.pulls().len(), 1);
    assert_eq!(fake.requests().len(), 6);
}

#[tokio::test]
async fn anthropic_answers_like_the_api() {
    let script = Script::new()
        .api_key("key-123456")
        .error(529, "Overloaded")
        .turn(Turn::text_only("hi {who}"));
    let fake = FakeAnthropic::start(script).await;
    fake.set_var("who", "there");
    let c = client();
    let url = format!("{}/v1/messages", fake.base_url());
    let agent = json!({"model": "m", "max_tokens": 10, "messages": [], "tools": [{"name": "x"}]});

    let r = c
        .post(&url)
        .header("x-api-key", "wrong")
        .json(&agent)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(&url)
        .header("x-api-key", "key-123456")
        .json(&agent)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 529);
    let e: Value = r.json().await.unwrap();
    assert_eq!(
        e,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    );

    // A side request (no tools) does not consume the script.
    let side = json!({"model": "m", "max_tokens": 10, "messages": []});
    let r = c
        .post(&url)
        .header("x-api-key", "key-123456")
        .json(&side)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(fake.replies_left(), 1);

    let r = c
        .post(&url)
        .header("x-api-key", "key-123456")
        .json(&agent)
        .send()
        .await
        .unwrap();
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["content"][0]["text"], "hi there");
    assert_eq!(m["stop_reason"], "end_turn");

    let mut streaming = agent.clone();
    streaming["stream"] = json!(true);
    let r = c
        .post(&url)
        .header("x-api-key", "key-123456")
        .json(&streaming)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.unwrap();
    assert!(text.starts_with("event: message_start\n"));
    assert!(
        text.trim_end()
            .ends_with(r#"data: {"type":"message_stop"}"#)
    );
    assert!(
        text.contains("Done."),
        "exhausted script falls back to a Done. turn"
    );

    let r = c
        .post(format!("{url}/count_tokens"))
        .header("x-api-key", "key-123456")
        .json(&side)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["input_tokens"], 42);
    let r = c
        .get(format!("{}/v1/nope", fake.base_url()))
        .header("x-api-key", "key-123456")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["type"],
        "not_found_error"
    );
    assert_eq!(fake.agent_requests().len(), 3);

    fake.push(Reply::Stall);
    assert_eq!(fake.replies_left(), 1);
}

#[test]
fn bare_repo_serves_main_and_can_reject_pushes() {
    let repo = BareRepo::create();
    assert_eq!(repo.branches(), ["main"]);
    assert_eq!(
        repo.read_file("main", "README.md").as_deref(),
        Some("# test repository\n")
    );
    assert_eq!(repo.read_file("nope", "README.md"), None);
    repo.reject_pushes();
    let work = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .envs(ao_testkit::git::isolated_git_env(home.path()))
            .current_dir(work.path())
            .args(args)
            .status()
            .unwrap()
    };
    assert!(git(&["clone", "-q", &repo.url(), "c"]).success());
    std::fs::write(work.path().join("c/x"), "x").unwrap();
    assert!(git(&["-C", "c", "add", "x"]).success());
    assert!(git(&["-C", "c", "commit", "-qm", "x"]).success());
    assert!(!git(&["-C", "c", "push", "-q", "origin", "HEAD:refs/heads/b"]).success());
    assert_eq!(repo.branches(), ["main"]);
}
