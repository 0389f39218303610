//! HTTP calls to the orchestrator, and the mapping of every failure to a one-line message and
//! a distinct exit code.

use std::io::Write;
use std::process::ExitCode;

use futures::StreamExt;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::Value;

use super::Connection;

/// Exit codes, one per kind of failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// The task ended but did not succeed (failed, cancelled, timed out).
    TaskFailed = 1,
    /// Bad command-line input.
    Usage = 2,
    /// The server could not be reached.
    Unreachable = 3,
    /// 401: missing or wrong token.
    Unauthorized = 4,
    /// 404: no such task.
    NotFound = 5,
    /// 400/413/415/422: the server refused the request as invalid.
    Invalid = 6,
    /// 429: the queue is full.
    QueueFull = 7,
    /// 409: the task already finished, or an idempotency key was reused.
    Conflict = 8,
    /// 5xx or an unexpected answer.
    Server = 9,
}

impl ExitKind {
    pub fn code(self) -> ExitCode {
        ExitCode::from(self as u8)
    }
}

#[derive(Debug)]
pub struct ClientError {
    pub kind: ExitKind,
    pub message: String,
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ClientError {
    pub fn usage(message: String) -> Self {
        ClientError {
            kind: ExitKind::Usage,
            message,
        }
    }

    fn transport(url: &str, e: reqwest::Error) -> Self {
        ClientError {
            kind: ExitKind::Unreachable,
            message: format!("cannot reach the orchestrator at {url}: {}", root_cause(&e)),
        }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

pub struct Api {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Api {
    pub fn new(conn: &Connection) -> Result<Self, ClientError> {
        let base = conn.url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::usage(format!(
                "--url `{base}` must start with http:// or https://"
            )));
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!(
                "agent-orchestrator-cli/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| ClientError::usage(format!("cannot build an HTTP client: {e}")))?;
        Ok(Api {
            client,
            base,
            token: conn.token.clone(),
        })
    }

    fn req(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        let rb = self
            .client
            .request(method, format!("{}{}", self.base, path));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Send, and turn any non-success answer into a [`ClientError`].
    pub async fn send(&self, rb: RequestBuilder) -> Result<Response, ClientError> {
        let resp = rb
            .send()
            .await
            .map_err(|e| ClientError::transport(&self.base, e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let msg = body["error"]["message"].as_str().unwrap_or("").to_string();
        let (kind, text) = match status {
            StatusCode::UNAUTHORIZED => (
                ExitKind::Unauthorized,
                "unauthorized: set AO_TOKEN or --token to a valid API token".to_string(),
            ),
            StatusCode::NOT_FOUND => (ExitKind::NotFound, format!("not found: {msg}")),
            StatusCode::CONFLICT => (ExitKind::Conflict, format!("conflict: {msg}")),
            StatusCode::TOO_MANY_REQUESTS => {
                (ExitKind::QueueFull, format!("the queue is full: {msg}"))
            }
            s if s.is_client_error() => (ExitKind::Invalid, format!("invalid request: {msg}")),
            s => (
                ExitKind::Server,
                format!(
                    "server error {}: {}",
                    s.as_u16(),
                    if msg.is_empty() { "no details" } else { &msg }
                ),
            ),
        };
        Err(ClientError {
            kind,
            message: text,
        })
    }

    async fn json(&self, rb: RequestBuilder) -> Result<Value, ClientError> {
        self.send(rb).await?.json().await.map_err(|e| ClientError {
            kind: ExitKind::Server,
            message: format!("unexpected answer: {e}"),
        })
    }

    pub async fn submit(&self, body: &Value, key: Option<&str>) -> Result<Value, ClientError> {
        let mut rb = self.req(reqwest::Method::POST, "/api/v1/tasks").json(body);
        if let Some(k) = key {
            rb = rb.header("idempotency-key", k);
        }
        self.json(rb).await
    }

    pub async fn get(&self, id: &str) -> Result<Value, ClientError> {
        self.json(self.req(reqwest::Method::GET, &format!("/api/v1/tasks/{}", enc(id))))
            .await
    }

    pub async fn cancel(&self, id: &str) -> Result<Value, ClientError> {
        self.json(self.req(
            reqwest::Method::POST,
            &format!("/api/v1/tasks/{}/cancel", enc(id)),
        ))
        .await
    }

    pub async fn list(
        &self,
        status: Option<&str>,
        labels: &[String],
        limit: usize,
    ) -> Result<Vec<Value>, ClientError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        while out.len() < limit {
            let mut q: Vec<(&str, String)> =
                vec![("limit", (limit - out.len()).min(200).to_string())];
            if let Some(s) = status {
                q.push(("status", s.to_string()));
            }
            for l in labels {
                q.push(("label", l.clone()));
            }
            if let Some(c) = &cursor {
                q.push(("cursor", c.clone()));
            }
            let page = self
                .json(self.req(reqwest::Method::GET, "/api/v1/tasks").query(&q))
                .await?;
            out.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        Ok(out)
    }

    /// Copy the task's logs to standard output as they come.
    pub async fn logs(&self, id: &str, follow: bool) -> Result<(), ClientError> {
        let path = format!("/api/v1/tasks/{}/logs?follow={follow}", enc(id));
        let resp = self.send(self.req(reqwest::Method::GET, &path)).await?;
        let mut body = resp.bytes_stream();
        let mut out = std::io::stdout().lock();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| ClientError::transport(&self.base, e))?;
            if out.write_all(&chunk).and_then(|_| out.flush()).is_err() {
                break; // closed pipe: the reader has seen enough
            }
        }
        Ok(())
    }

    /// Open the task's event stream; with `last_event_id`, the server resumes after it.
    pub async fn events(
        &self,
        id: &str,
        follow: bool,
        last_event_id: Option<i64>,
    ) -> Result<Response, ClientError> {
        let path = format!("/api/v1/tasks/{}/events?follow={follow}", enc(id));
        let mut rb = self
            .req(reqwest::Method::GET, &path)
            .header("accept", "text/event-stream");
        if let Some(last) = last_event_id {
            rb = rb.header("last-event-id", last.to_string());
        }
        self.send(rb).await
    }

    pub fn transport_error(&self, e: reqwest::Error) -> ClientError {
        ClientError::transport(&self.base, e)
    }
}

/// Task ids are UUIDs, but keep odd input from changing the path.
fn enc(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect()
}
