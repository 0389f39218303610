//! `GitHttp`: a [`BareRepo`] served over git's smart HTTP protocol on loopback, with GitHub's
//! authentication (basic auth `x-access-token:<token>`), so a worker clones and pushes over the
//! network as it does against github.com, never through a host path.
//!
//! The protocol is the real one: each request is handed to `git http-backend` (CGI), which
//! ships with git. Requests without the right credentials get 401, like GitHub.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::AsyncWriteExt;

use crate::git::BareRepo;

/// One request the server received: method, path and whether its credentials were right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorized: bool,
}

struct Inner {
    /// `/owner/repo.git`, the path the repository is served at.
    prefix: String,
    /// The `Authorization` header value that is accepted.
    expected: String,
    project_root: std::path::PathBuf,
    home: std::path::PathBuf,
    requests: Mutex<Vec<GitRequest>>,
}

/// A running smart-HTTP git server for one repository. Stops when dropped.
pub struct GitHttp {
    addr: SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

impl GitHttp {
    /// Serves `repo` at `http://127.0.0.1:<port>/<owner_repo>.git` for `token`.
    pub async fn serve(repo: &BareRepo, owner_repo: &str, token: &str) -> Self {
        let root = repo.path().parent().expect("the repo's folder").to_owned();
        let basic = STANDARD.encode(format!("x-access-token:{token}").as_bytes());
        let inner = Arc::new(Inner {
            prefix: format!("/{owner_repo}.git"),
            expected: format!("Basic {basic}"),
            home: root.join("home"),
            project_root: root,
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let (addr, task) = crate::serve::loopback(app).await;
        GitHttp { addr, inner, task }
    }

    /// The clone URL.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.inner.prefix)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<GitRequest> {
        self.inner
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for GitHttp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let h = |n: header::HeaderName| header_str(&parts.headers, n.as_str());
    let authorized = h(header::AUTHORIZATION) == inner.expected;
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    inner
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(GitRequest {
            method: parts.method.to_string(),
            path: path.clone(),
            query: query.clone(),
            authorized,
        });
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"GitHub\"")],
            "Invalid username or token.\n",
        )
            .into_response();
    }
    let Some(rest) = path.strip_prefix(&inner.prefix) else {
        return (StatusCode::NOT_FOUND, "Repository not found.\n").into_response();
    };
    let Ok(body) = axum::body::to_bytes(body, 256 * 1024 * 1024).await else {
        return (StatusCode::BAD_REQUEST, "unreadable body\n").into_response();
    };
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &inner.home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_PROJECT_ROOT", &inner.project_root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", format!("/remote.git{rest}"))
        .env("QUERY_STRING", &query)
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("CONTENT_TYPE", h(header::CONTENT_TYPE))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", h(header::CONTENT_ENCODING))
        .env("GIT_PROTOCOL", header_str(&parts.headers, "git-protocol"))
        // An authenticated user may push (http-backend refuses anonymous receive-pack).
        .env("REMOTE_USER", "x-access-token")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let Ok(mut child) = cmd.spawn() else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot run git http-backend\n",
        )
            .into_response();
    };
    let mut stdin = child.stdin.take().expect("piped stdin");
    let feed = tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
    });
    let out = child.wait_with_output().await;
    let _ = feed.await;
    match out {
        Ok(out) => cgi_response(&out.stdout, &out.stderr),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// A CGI program's output (headers, a blank line, the body) as an HTTP response.
fn cgi_response(stdout: &[u8], stderr: &[u8]) -> Response {
    let split = stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| stdout.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let Some((end, sep)) = split else {
        let msg = format!(
            "git http-backend gave no headers: {}",
            String::from_utf8_lossy(stderr)
        );
        tracing::warn!(error = %msg, "fake git server");
        return (StatusCode::INTERNAL_SERVER_ERROR, msg).into_response();
    };
    let mut builder = Response::builder().status(StatusCode::OK);
    for line in String::from_utf8_lossy(&stdout[..end]).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("500");
            builder = builder.status(code.parse::<u16>().unwrap_or(500));
        } else {
            builder = builder.header(name.trim(), value);
        }
    }
    builder
        .body(Body::from(stdout[end + sep..].to_vec()))
        .unwrap_or_else(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}
