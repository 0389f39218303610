//! `FakeAnthropic`: a scripted stand-in for the Anthropic Messages API that the real Claude
//! Code CLI can talk to (via `ANTHROPIC_BASE_URL`).
//!
//! Speaks the real wire format: `POST /v1/messages` with `"stream": true` gets the standard SSE
//! sequence (`message_start`, `content_block_start`/`_delta`/`_stop`, `message_delta`,
//! `message_stop`); errors use Anthropic's `{"type":"error","error":{…}}` body. Also answers
//! `HEAD /`, `POST /v1/messages/count_tokens`, and 404s anything else (logged).

mod script;
mod sse;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};

pub use script::{Block, Reply, Script, Turn, Usage};

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Header names are lower-case. Secrets are recorded as sent, so tests can check them.
    pub headers: BTreeMap<String, String>,
    /// The JSON body, if it was JSON.
    pub body: Option<Value>,
    /// True if this request was answered from the script (an agent turn).
    pub scripted: bool,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

#[derive(Default)]
struct Inner {
    script: Script,
    vars: Vec<(String, String)>,
    requests: Vec<RecordedRequest>,
    counter: u64,
    /// The number of agent requests answered so far, for waiting on it.
    agent_requests: tokio::sync::watch::Sender<usize>,
}

type Shared = Arc<Mutex<Inner>>;

/// A running fake Anthropic API. Stops when dropped.
pub struct FakeAnthropic {
    addr: SocketAddr,
    inner: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl FakeAnthropic {
    /// Starts the server on `127.0.0.1:0`. Must be called inside a Tokio runtime.
    pub async fn start(script: Script) -> Self {
        let inner: Shared = Arc::new(Mutex::new(Inner {
            script,
            ..Inner::default()
        }));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let (addr, task) = crate::serve::loopback(app).await;
        FakeAnthropic { addr, inner, task }
    }

    /// The value for `ANTHROPIC_BASE_URL` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Sets a `{key}` placeholder value used when rendering replies.
    pub fn set_var(&self, key: impl Into<String>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        let mut g = lock(&self.inner);
        g.vars.retain(|(k, _)| *k != key);
        g.vars.push((key, value));
    }

    /// Appends a reply to the script.
    pub fn push(&self, reply: impl Into<Reply>) {
        lock(&self.inner).script.replies.push_back(reply.into());
    }

    /// Scripted replies not yet used.
    pub fn replies_left(&self) -> usize {
        lock(&self.inner).script.replies.len()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.inner).requests.clone()
    }

    /// Waits until at least `n` agent requests were answered (no polling).
    pub async fn wait_for_agent_requests(&self, n: usize) {
        let mut rx = lock(&self.inner).agent_requests.subscribe();
        let _ = rx.wait_for(|seen| *seen >= n).await;
    }

    /// The agent requests (those answered from the script).
    pub fn agent_requests(&self) -> Vec<RecordedRequest> {
        self.requests().into_iter().filter(|r| r.scripted).collect()
    }
}

impl Drop for FakeAnthropic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(m: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn handle(State(inner): State<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let body: Option<Value> = serde_json::from_slice(&bytes).ok();
    let path = parts.uri.path().to_owned();
    let headers = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut rec = RecordedRequest {
        method: parts.method.to_string(),
        path: path.clone(),
        query: parts.uri.query().map(str::to_owned),
        headers,
        body: body.clone(),
        scripted: false,
    };

    if parts.method == Method::HEAD || (parts.method == Method::GET && path == "/") {
        lock(&inner).requests.push(rec);
        return StatusCode::OK.into_response();
    }
    let mut g = lock(&inner);
    if let Some(expected) = g.script.api_key.clone()
        && !key_matches(&parts.headers, &expected)
    {
        g.requests.push(rec);
        return error_response(401, "invalid x-api-key");
    }
    let response = match (parts.method.clone(), path.as_str()) {
        (Method::POST, "/v1/messages/count_tokens") => {
            axum::Json(json!({"input_tokens": 42})).into_response()
        }
        (Method::POST, "/v1/messages") => {
            let body = body.unwrap_or(Value::Null);
            let agent = body["tools"].as_array().is_some_and(|t| !t.is_empty());
            let reply = if agent {
                rec.scripted = true;
                g.agent_requests.send_modify(|n| *n += 1);
                g.script
                    .replies
                    .pop_front()
                    .unwrap_or_else(|| g.script.exhausted.clone())
            } else {
                Reply::Turn(Turn::text_only("Agent task").usage(Usage::new(20, 5)))
            };
            let mut vars = g.vars.clone();
            if let Some(cwd) = cwd_from_system(&body) {
                vars.push(("cwd".into(), cwd));
            }
            g.counter += 1;
            let msg_id = format!("msg_fake{:04}", g.counter);
            let model = body["model"]
                .as_str()
                .unwrap_or("claude-sonnet-4-5")
                .to_owned();
            let stream = body["stream"].as_bool().unwrap_or(false);
            respond(reply, &msg_id, &model, stream, &vars)
        }
        _ => {
            tracing::warn!(method = %parts.method, path, "fake anthropic: unexpected request");
            error_response(
                404,
                &format!("fake anthropic: no route for {} {path}", parts.method),
            )
        }
    };
    g.requests.push(rec);
    response
}

fn key_matches(h: &HeaderMap, expected: &str) -> bool {
    let api_key = h.get("x-api-key").and_then(|v| v.to_str().ok());
    let bearer = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    api_key == Some(expected) || bearer == Some(expected)
}

fn respond(
    reply: Reply,
    msg_id: &str,
    model: &str,
    stream: bool,
    vars: &[(String, String)],
) -> Response {
    match reply {
        Reply::Error { status, message } => error_response(status, &message),
        Reply::Turn(turn) if stream => {
            sse_response(sse::turn_frames(msg_id, model, &turn, vars), false)
        }
        Reply::Turn(turn) => {
            axum::Json(sse::turn_message(msg_id, model, &turn, vars)).into_response()
        }
        Reply::Stall => sse_response(sse::start_frames(msg_id, model, &Usage::default()), true),
    }
}

fn sse_response(frames: Vec<Bytes>, stall: bool) -> Response {
    let head = futures::stream::iter(frames.into_iter().map(Ok::<_, std::io::Error>));
    let body = if stall {
        Body::from_stream(head.chain(futures::stream::pending()))
    } else {
        Body::from_stream(head)
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("request-id", "req_fake")
        .body(body)
        .expect("valid response")
}

fn error_response(status: u16, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        [("request-id", "req_fake")],
        axum::Json(script::error_body(status, message)),
    )
        .into_response()
}

/// The working directory Claude Code states in its system prompt ("Working directory: /x").
fn cwd_from_system(body: &Value) -> Option<String> {
    let mut texts: Vec<&str> = Vec::new();
    match &body["system"] {
        Value::String(s) => texts.push(s),
        Value::Array(a) => texts.extend(a.iter().filter_map(|b| b["text"].as_str())),
        _ => {}
    }
    if let Some(msgs) = body["messages"].as_array() {
        for m in msgs {
            match &m["content"] {
                Value::String(s) => texts.push(s),
                Value::Array(a) => texts.extend(a.iter().filter_map(|b| b["text"].as_str())),
                _ => {}
            }
        }
    }
    texts.iter().find_map(|t| {
        t.lines().find_map(|l| {
            let l = l.trim().trim_start_matches("- ");
            l.strip_prefix("Primary working directory: ")
                .or_else(|| l.strip_prefix("Working directory: "))
                .map(|d| d.trim().to_owned())
        })
    })
}
