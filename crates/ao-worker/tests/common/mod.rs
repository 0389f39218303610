//! Shared harness for the worker tests: a fake orchestrator callback receiver, and a bundle of
//! fakes (Anthropic, GitHub, a bare repo) with distinctive random secrets.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ao_core::task::{Repository, TaskId, TaskSpec};
use ao_testkit::git::BareRepo;
use ao_testkit::{FakeAnthropic, FakeGitHub, Script, claude_bin};
use ao_worker::{CallbackConfig, WorkerConfig};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{post, put};
use serde_json::{Value, json};

#[derive(Default)]
pub struct Received {
    pub events: Vec<Value>,
    pub results: Vec<Value>,
    pub bad_auth: usize,
    pub gaps: usize,
    pub batches: usize,
    /// Answer this many requests with 503 before accepting any.
    pub fail_next: usize,
}

/// The orchestrator's side of the callback API, recording what arrives.
pub struct CallbackServer {
    pub addr: SocketAddr,
    pub token: String,
    pub got: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

type St = (String, Arc<Mutex<Received>>);

fn authorized(h: &HeaderMap, token: &str) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {token}"))
}

async fn events(
    State((token, got)): State<St>,
    Path(_id): Path<String>,
    h: HeaderMap,
    body: axum::Json<Value>,
) -> axum::response::Response {
    let mut g = got.lock().unwrap();
    if !authorized(&h, &token) {
        g.bad_auth += 1;
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if g.fail_next > 0 {
        g.fail_next -= 1;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    g.batches += 1;
    let first = body["first_seq"].as_u64().unwrap_or(0);
    for (i, ev) in body["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let seq = first + i as u64;
        let next = g.events.len() as u64 + 1;
        if seq == next {
            g.events.push(ev);
        } else if seq > next {
            g.gaps += 1;
        }
    }
    axum::Json(json!({"last_seq": g.events.len()})).into_response()
}

async fn result(
    State((token, got)): State<St>,
    Path(_id): Path<String>,
    h: HeaderMap,
    body: axum::Json<Value>,
) -> StatusCode {
    let mut g = got.lock().unwrap();
    if !authorized(&h, &token) {
        g.bad_auth += 1;
        return StatusCode::UNAUTHORIZED;
    }
    if g.fail_next > 0 {
        g.fail_next -= 1;
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    g.results.push(body.0);
    StatusCode::NO_CONTENT
}

impl CallbackServer {
    pub async fn start(token: String) -> Self {
        let got = Arc::new(Mutex::new(Received::default()));
        let app = Router::new()
            .route("/api/v1/tasks/{id}/worker/events", post(events))
            .route("/api/v1/tasks/{id}/worker/result", put(result))
            .with_state((token.clone(), got.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        CallbackServer {
            addr,
            token,
            got,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn events(&self) -> Vec<Value> {
        self.got.lock().unwrap().events.clone()
    }

    pub fn result(&self) -> Option<Value> {
        self.got.lock().unwrap().results.last().cloned()
    }
}

impl Drop for CallbackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Distinctive random secret values.
pub fn secret(prefix: &str) -> String {
    format!("{prefix}{}", &ao_core::token::generate()[..32])
}

/// All the fakes one worker run talks to.
pub struct World {
    pub task_id: TaskId,
    pub anthropic: FakeAnthropic,
    pub github: FakeGitHub,
    pub callback: CallbackServer,
    pub bare: BareRepo,
    pub workspace: tempfile::TempDir,
    pub home: tempfile::TempDir,
    pub anthropic_key: String,
    pub github_token: String,
}

impl World {
    pub async fn new(script: Script) -> Self {
        let anthropic_key = secret("sk-ant-test-");
        let github_token = secret("ghp_test");
        World {
            task_id: TaskId::new(),
            anthropic: FakeAnthropic::start(script.api_key(anthropic_key.clone())).await,
            github: FakeGitHub::start(github_token.clone()).await,
            callback: CallbackServer::start(secret("cb-test-")).await,
            bare: BareRepo::create(),
            workspace: tempfile::tempdir().unwrap(),
            home: tempfile::tempdir().unwrap(),
            anthropic_key,
            github_token,
        }
    }

    pub fn spec(&self, prompt: &str, with_repo: bool) -> TaskSpec {
        TaskSpec {
            prompt: prompt.into(),
            repository: with_repo.then(|| Repository {
                url: self.bare.url(),
                git_ref: None,
            }),
            model: None,
            max_turns: None,
            timeout_seconds: 120,
            max_budget_usd: None,
            labels: Default::default(),
            env: Default::default(),
        }
    }

    /// A config pointing at all the fakes.
    pub fn config(&self, spec: TaskSpec) -> WorkerConfig {
        let mut cfg = WorkerConfig::new(self.task_id, spec, self.workspace.path().to_path_buf());
        cfg.home = Some(self.home.path().to_path_buf());
        cfg.callback = Some(CallbackConfig {
            url: self.callback.url(),
            token: self.callback.token.clone().into(),
        });
        cfg.claude_bin = claude_bin();
        cfg.github_api_url = self.github.api_url();
        cfg.github_token = Some(self.github_token.clone().into());
        cfg.github_repo = Some("acme/widgets".into());
        cfg.anthropic_api_key = Some(self.anthropic_key.clone().into());
        cfg.anthropic_base_url = Some(self.anthropic.base_url());
        cfg.claude_max_retries = 0;
        cfg.print_events = false;
        cfg.callback_retry_budget = std::time::Duration::from_secs(5);
        cfg
    }

    /// The same configuration as environment variables (for running the worker as a process):
    /// the contract as a runtime would set it, and the worker settings by their names.
    pub fn env(&self, spec: &TaskSpec) -> Vec<(String, String)> {
        use ao_core::worker::settings as s;
        use ao_core::worker::{CallbackEnv, EnvValue, TaskSource, WorkerEnv};
        use secrecy::ExposeSecret;
        let contract = WorkerEnv {
            task_id: self.task_id,
            task: TaskSource::Inline(spec.clone()),
            workspace: Some(self.workspace.path().to_path_buf()),
            home: Some(self.home.path().to_path_buf()),
            tmpdir: None,
            callback: Some(CallbackEnv {
                url: self.callback.url(),
                token: self.callback.token.clone().into(),
            }),
        };
        let mut env: Vec<(String, String)> = contract
            .to_env()
            .into_iter()
            .map(|v| {
                let value = match v.value {
                    EnvValue::Plain(p) => p,
                    EnvValue::Secret { value, .. } => value.expose_secret().to_owned(),
                };
                (v.name.to_owned(), value)
            })
            .collect();
        let v = |k: &str, s: String| (k.to_owned(), s);
        env.extend([
            v(s::CLAUDE_BIN, claude_bin().display().to_string()),
            v(s::GITHUB_API_URL, self.github.api_url()),
            v(s::GITHUB_REPO, "acme/widgets".into()),
            v(s::GITHUB_TOKEN, self.github_token.clone()),
            v(s::ANTHROPIC_API_KEY, self.anthropic_key.clone()),
            v(s::ANTHROPIC_BASE_URL, self.anthropic.base_url()),
            v(s::CLAUDE_MAX_RETRIES, "0".into()),
            v("PATH", std::env::var("PATH").unwrap_or_default()),
        ]);
        env
    }
}

/// Event types in order, tool_use names for assistant tool calls.
pub fn tool_uses(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "assistant")
        .flat_map(|e| {
            e["message"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|b| b["type"] == "tool_use")
        .map(|b| b["name"].as_str().unwrap_or("").to_owned())
        .collect()
}
