//! `FakeGitHub`: the slice of the GitHub REST API the worker uses to open pull requests.
//!
//! Implements `POST /repos/{owner}/{repo}/pulls` (201, or 422 "A pull request already exists"
//! when an open PR has the same head), `GET /repos/{owner}/{repo}/pulls?head=owner:branch` and
//! `GET /rate_limit` (what `agent-orchestrator doctor` asks to see that the token is accepted).
//! Validates `Authorization: Bearer <token>`, `Accept: application/vnd.github+json`,
//! `X-GitHub-Api-Version` and `User-Agent` like GitHub does (401/400/403 otherwise).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::anthropic::RecordedRequest;

/// A pull request as the fake stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct PullRequest {
    pub owner: String,
    pub repo: String,
    pub number: u64,
    pub title: String,
    pub body: String,
    /// Branch name, as sent in `head` (without `owner:`).
    pub head: String,
    pub base: String,
    pub html_url: String,
}

struct Inner {
    token: String,
    pulls: Vec<PullRequest>,
    requests: Vec<RecordedRequest>,
    fail_create: Option<u16>,
}

type Shared = Arc<Mutex<Inner>>;

/// A running fake GitHub API. Stops when dropped.
pub struct FakeGitHub {
    addr: SocketAddr,
    inner: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl FakeGitHub {
    /// Starts the server on `127.0.0.1:0`; requests must carry `Bearer <token>`.
    pub async fn start(token: impl Into<String>) -> Self {
        let inner: Shared = Arc::new(Mutex::new(Inner {
            token: token.into(),
            pulls: Vec::new(),
            requests: Vec::new(),
            fail_create: None,
        }));
        let app = Router::new()
            .route(
                "/repos/{owner}/{repo}/pulls",
                get(list_pulls).post(create_pull),
            )
            .route("/rate_limit", get(rate_limit))
            .fallback(not_found)
            .with_state(inner.clone());
        let (addr, task) = crate::serve::loopback(app).await;
        FakeGitHub { addr, inner, task }
    }

    /// The value for `AO_GITHUB_API_URL`.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Makes every later `POST …/pulls` fail with this status (422 → a validation error,
    /// others → a generic error body). `None` restores normal behaviour.
    pub fn fail_pull_create(&self, status: Option<u16>) {
        lock(&self.inner).fail_create = status;
    }

    /// Adds an existing open pull request (e.g. to exercise the "already exists" path).
    pub fn insert_pull(&self, owner: &str, repo: &str, head: &str, base: &str) -> PullRequest {
        let mut g = lock(&self.inner);
        let pr = new_pull(&g, owner, repo, "existing", "", head, base);
        g.pulls.push(pr.clone());
        pr
    }

    /// Pull requests created or inserted so far.
    pub fn pulls(&self) -> Vec<PullRequest> {
        lock(&self.inner).pulls.clone()
    }

    /// Every request received so far (headers include `authorization` as sent).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.inner).requests.clone()
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(m: &Shared) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn new_pull(
    g: &Inner,
    owner: &str,
    repo: &str,
    title: &str,
    body: &str,
    head: &str,
    base: &str,
) -> PullRequest {
    let number = g.pulls.len() as u64 + 1;
    PullRequest {
        owner: owner.into(),
        repo: repo.into(),
        number,
        title: title.into(),
        body: body.into(),
        head: head.into(),
        base: base.into(),
        html_url: format!("https://github.com/{owner}/{repo}/pull/{number}"),
    }
}

fn pull_json(p: &PullRequest) -> Value {
    json!({
        "id": 1_000_000 + p.number,
        "number": p.number,
        "state": "open",
        "title": p.title,
        "body": p.body,
        "html_url": p.html_url,
        "url": format!("https://api.github.com/repos/{}/{}/pulls/{}", p.owner, p.repo, p.number),
        "head": {"ref": p.head, "label": format!("{}:{}", p.owner, p.head)},
        "base": {"ref": p.base, "label": format!("{}:{}", p.owner, p.base)},
        "draft": false,
        "merged": false,
    })
}

fn gh_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": status.as_u16().to_string()})))
        .into_response()
}

fn record(
    g: &mut Inner,
    method: &str,
    path: String,
    query: Option<String>,
    headers: &HeaderMap,
    body: Option<Value>,
) {
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    g.requests.push(RecordedRequest {
        method: method.into(),
        path,
        query,
        headers,
        body,
        scripted: false,
    });
}

/// GitHub's checks, in the order it applies them.
fn check_headers(g: &Inner, h: &HeaderMap) -> Result<(), Box<Response>> {
    let s = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let fail = |status, msg: &str| Err(Box::new(gh_error(status, msg)));
    if s("user-agent").is_empty() {
        return fail(
            StatusCode::FORBIDDEN,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
        );
    }
    if s("authorization") != format!("Bearer {}", g.token) {
        return fail(StatusCode::UNAUTHORIZED, "Bad credentials");
    }
    if s("accept") != "application/vnd.github+json" {
        return fail(
            StatusCode::BAD_REQUEST,
            "expected Accept: application/vnd.github+json",
        );
    }
    if s("x-github-api-version") != "2022-11-28" {
        return fail(
            StatusCode::BAD_REQUEST,
            "expected X-GitHub-Api-Version: 2022-11-28",
        );
    }
    Ok(())
}

async fn create_pull(
    State(inner): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1024 * 1024)
        .await
        .unwrap_or_default();
    let body: Option<Value> = serde_json::from_slice(&bytes).ok();
    let mut g = lock(&inner);
    record(
        &mut g,
        "POST",
        parts.uri.path().into(),
        None,
        &parts.headers,
        body.clone(),
    );
    if let Err(r) = check_headers(&g, &parts.headers) {
        return *r;
    }
    let Some(b) = body else {
        return gh_error(StatusCode::BAD_REQUEST, "Problems parsing JSON");
    };
    let field = |k: &str| b[k].as_str().unwrap_or("").to_owned();
    let (title, head, base) = (field("title"), field("head"), field("base"));
    if title.is_empty() || head.is_empty() || base.is_empty() {
        return gh_error(StatusCode::UNPROCESSABLE_ENTITY, "Validation Failed");
    }
    let head = head.rsplit(':').next().unwrap_or_default().to_owned();
    let exists = g
        .pulls
        .iter()
        .any(|p| p.owner == owner && p.repo == repo && p.head == head);
    match g.fail_create {
        Some(422) => {}
        Some(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return gh_error(status, "Server Error");
        }
        None if !exists => {
            let pr = new_pull(&g, &owner, &repo, &title, &field("body"), &head, &base);
            g.pulls.push(pr.clone());
            return (StatusCode::CREATED, axum::Json(pull_json(&pr))).into_response();
        }
        None => {}
    }
    let msg = format!("A pull request already exists for {owner}:{head}.");
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({
            "message": "Validation Failed",
            "errors": [{"resource": "PullRequest", "code": "custom", "message": msg}],
            "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
            "status": "422",
        })),
    )
        .into_response()
}

async fn list_pulls(
    State(inner): State<Shared>,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
    req: Request,
) -> Response {
    let mut g = lock(&inner);
    record(
        &mut g,
        "GET",
        req.uri().path().into(),
        req.uri().query().map(str::to_owned),
        req.headers(),
        None,
    );
    if let Err(r) = check_headers(&g, req.headers()) {
        return *r;
    }
    let head = q
        .get("head")
        .map(|h| h.rsplit(':').next().unwrap_or_default().to_owned());
    let list: Vec<Value> = g
        .pulls
        .iter()
        .filter(|p| p.owner == owner && p.repo == repo)
        .filter(|p| head.as_deref().is_none_or(|h| p.head == h))
        .map(pull_json)
        .collect();
    axum::Json(Value::Array(list)).into_response()
}

async fn rate_limit(State(inner): State<Shared>, req: Request) -> Response {
    let mut g = lock(&inner);
    record(
        &mut g,
        "GET",
        "/rate_limit".into(),
        None,
        req.headers(),
        None,
    );
    if let Err(r) = check_headers(&g, req.headers()) {
        return *r;
    }
    let core = json!({"limit": 5000, "remaining": 4999, "reset": 0, "used": 1});
    axum::Json(json!({"resources": {"core": core}, "rate": core})).into_response()
}

async fn not_found(req: Request) -> Response {
    tracing::warn!(method = %req.method(), path = req.uri().path(), "fake github: unexpected request");
    gh_error(StatusCode::NOT_FOUND, "Not Found")
}
