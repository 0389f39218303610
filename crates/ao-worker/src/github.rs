//! Opening the pull request: which GitHub repository a clone URL names, and the REST calls
//! (`POST /repos/{o}/{r}/pulls`, and on "already exists" `GET …/pulls?head=o:branch`).

use std::time::{Duration, SystemTime};

use ao_core::retry::{Retry, RetryPolicy, parse_retry_after};
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::scrub::Scrubber;

/// A pull request the worker opened or found.
#[derive(Debug, Clone, PartialEq)]
pub struct PullRequest {
    pub number: u64,
    pub html_url: String,
}

/// Why no pull request could be opened. Never contains the token.
#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error("GitHub answered HTTP {status}: {message}")]
    Status { status: u16, message: String },
    #[error("GitHub unreachable: {0}")]
    Transport(String),
    #[error("unexpected GitHub response: {0}")]
    Invalid(&'static str),
}

/// How GitHub calls are retried: 4 tries, 500 ms doubling to 4 s, and GitHub's own wait
/// (`Retry-After`, or the rate limit's reset) honoured up to 60 s.
pub const RETRY: RetryPolicy = RetryPolicy {
    attempts: 4,
    first_backoff: Duration::from_millis(500),
    max_backoff: Duration::from_secs(4),
    max_server_wait: Duration::from_secs(60),
    total_wait: None,
};

/// One failed try, with what it says about the next.
struct Failed {
    retry: Retry,
    error: GitHubError,
}

/// Whether a GitHub answer is worth retrying, and when (GitHub's REST docs, "Rate limits"):
/// `retry-after` when present (429, or a 403 secondary rate limit); a 403 or 429 with
/// `x-ratelimit-remaining: 0` waits until `x-ratelimit-reset` (epoch seconds); other 429s and
/// every 5xx after the backoff; anything else is final.
fn retry_of(status: u16, headers: &HeaderMap, now: SystemTime) -> Retry {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let limited = matches!(status, 403 | 429);
    if limited && let Some(wait) = header("retry-after").and_then(|v| parse_retry_after(v, now)) {
        return Retry::After(wait);
    }
    if limited && header("x-ratelimit-remaining") == Some("0") {
        let reset = header("x-ratelimit-reset").and_then(|v| v.trim().parse::<u64>().ok());
        let at = reset.map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        let wait = at.map_or(Duration::from_secs(60), |at| {
            at.duration_since(now).unwrap_or(Duration::ZERO)
        });
        return Retry::After(wait);
    }
    match status {
        429 | 500..=599 => Retry::Backoff,
        _ => Retry::No,
    }
}

/// `(owner, repo)` from a GitHub clone URL: `https://github.com/o/r(.git)`,
/// `ssh://git@github.com/o/r.git` or `git@github.com:o/r.git`. `None` for anything else.
pub fn parse_repo_url(url: &str) -> Option<(String, String)> {
    let url = url.trim();
    let path = if let Some(rest) = url.strip_prefix("git@github.com:") {
        rest
    } else {
        let (scheme, rest) = url.split_once("://")?;
        if !matches!(scheme, "https" | "http" | "ssh" | "git") {
            return None;
        }
        let (authority, path) = rest.split_once('/')?;
        let host = authority.rsplit('@').next()?.split(':').next()?;
        if !host.eq_ignore_ascii_case("github.com") && !host.eq_ignore_ascii_case("www.github.com")
        {
            return None;
        }
        path
    };
    parse_owner_repo(path.trim_end_matches('/').trim_end_matches(".git"))
}

/// `(owner, repo)` from `owner/repo` (e.g. `AO_GITHUB_REPO`).
pub fn parse_owner_repo(s: &str) -> Option<(String, String)> {
    let (owner, repo) = s.trim().split_once('/')?;
    let ok = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    (ok(owner) && ok(repo) && repo != "." && repo != "..")
        .then(|| (owner.to_owned(), repo.to_owned()))
}

/// A GitHub REST client for one repository.
pub struct GitHub {
    client: reqwest::Client,
    api: String,
    token: SecretString,
    owner: String,
    repo: String,
    scrub: Scrubber,
}

/// What to open.
pub struct NewPull<'a> {
    pub title: &'a str,
    pub head: &'a str,
    pub base: &'a str,
    pub body: &'a str,
}

impl GitHub {
    pub fn new(
        api: &str,
        token: SecretString,
        owner: String,
        repo: String,
        scrub: Scrubber,
    ) -> Self {
        GitHub {
            client: crate::http_client(),
            api: api.trim_end_matches('/').to_owned(),
            token,
            owner,
            repo,
            scrub,
        }
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, url)
            .bearer_auth(self.token.expose_secret())
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
    }

    /// Opens the pull request, or returns the open one for the same head. Retried under
    /// [`RETRY`] on 5xx, 429 and GitHub's rate limits, after the wait GitHub asks for
    /// (safe: a duplicate create is answered with 422 and then looked up).
    pub async fn open_pull(&self, pr: &NewPull<'_>) -> Result<PullRequest, GitHubError> {
        let url = format!("{}/repos/{}/{}/pulls", self.api, self.owner, self.repo);
        let body = json!({"title": pr.title, "head": pr.head, "base": pr.base, "body": pr.body});
        let create = || async {
            let r = self
                .request(reqwest::Method::POST, &url)
                .json(&body)
                .send()
                .await
                .map_err(|e| Failed {
                    retry: Retry::Backoff,
                    error: GitHubError::Transport(self.scrub.scrub(&e.without_url().to_string())),
                })?;
            let status = r.status().as_u16();
            let retry = retry_of(status, r.headers(), std::time::SystemTime::now());
            let value = r.json::<Value>().await.unwrap_or(Value::Null);
            match status {
                201 | 200 => Ok(Some(value)),
                422 if already_exists(&value) => Ok(None),
                _ => Err(Failed {
                    retry,
                    error: self.status_error(status, &value),
                }),
            }
        };
        let created = RETRY
            .run(create, |f: &Failed| f.retry, |f, wait| {
                tracing::debug!(error = %f.error, wait_ms = wait.as_millis() as u64, "pull request create failed, retrying");
            })
            .await
            .map_err(|f| f.error)?;
        match created {
            Some(value) => pull_from(&value),
            None => self.find_open(pr.head).await,
        }
    }

    async fn find_open(&self, head: &str) -> Result<PullRequest, GitHubError> {
        let head = encode(&format!("{}:{head}", self.owner));
        let url = format!(
            "{}/repos/{}/{}/pulls?head={head}&state=open",
            self.api, self.owner, self.repo
        );
        let resp = self
            .request(reqwest::Method::GET, &url)
            .send()
            .await
            .map_err(|e| GitHubError::Transport(self.scrub.scrub(&e.without_url().to_string())))?;
        let status = resp.status().as_u16();
        let value = resp.json::<Value>().await.unwrap_or(Value::Null);
        if status != 200 {
            return Err(self.status_error(status, &value));
        }
        value
            .as_array()
            .and_then(|a| a.first())
            .ok_or(GitHubError::Invalid(
                "pull request reported as existing but not found",
            ))
            .and_then(pull_from)
    }

    fn status_error(&self, status: u16, body: &Value) -> GitHubError {
        let mut message = body["message"].as_str().unwrap_or("").to_owned();
        if let Some(first) = body["errors"].as_array().and_then(|e| e.first()) {
            let detail = first["message"]
                .as_str()
                .or(first["code"].as_str())
                .unwrap_or("");
            message = format!("{message} ({detail})");
        }
        GitHubError::Status {
            status,
            message: crate::truncate(&self.scrub.scrub(&message), 300),
        }
    }
}

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn already_exists(body: &Value) -> bool {
    body["errors"].as_array().is_some_and(|errs| {
        errs.iter().any(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("already exists"))
        })
    })
}

fn pull_from(v: &Value) -> Result<PullRequest, GitHubError> {
    let number = v["number"]
        .as_u64()
        .ok_or(GitHubError::Invalid("missing number"))?;
    let html_url = v["html_url"]
        .as_str()
        .ok_or(GitHubError::Invalid("missing html_url"))?;
    Ok(PullRequest {
        number,
        html_url: html_url.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(o: &str, r: &str) -> Option<(String, String)> {
        Some((o.into(), r.into()))
    }

    #[test]
    fn parses_github_urls() {
        assert_eq!(parse_repo_url("https://github.com/o/r"), p("o", "r"));
        assert_eq!(parse_repo_url("https://github.com/o/r.git"), p("o", "r"));
        assert_eq!(parse_repo_url("https://github.com/o/r/"), p("o", "r"));
        assert_eq!(parse_repo_url("git@github.com:o/r.git"), p("o", "r"));
        assert_eq!(
            parse_repo_url("ssh://git@github.com/my-org/my.repo.git"),
            p("my-org", "my.repo")
        );
        assert_eq!(parse_repo_url("https://GitHub.com/o/r.git"), p("o", "r"));
    }

    #[test]
    fn rejects_other_urls() {
        assert_eq!(parse_repo_url("/tmp/remote.git"), None);
        assert_eq!(parse_repo_url("file:///tmp/remote.git"), None);
        assert_eq!(parse_repo_url("https://gitlab.com/o/r.git"), None);
        assert_eq!(parse_repo_url("https://github.com/o"), None);
        assert_eq!(parse_repo_url("https://github.com/o/r/tree/main"), None);
        assert_eq!(parse_owner_repo("o/r"), p("o", "r"));
        assert_eq!(parse_owner_repo("o/.."), None);
        assert_eq!(parse_owner_repo("nope"), None);
    }

    #[test]
    fn github_says_when_to_come_back() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let h = |pairs: &[(&'static str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, v.parse().unwrap());
            }
            m
        };
        let after = |s| Retry::After(Duration::from_secs(s));
        assert_eq!(retry_of(429, &h(&[("retry-after", "7")]), now), after(7));
        assert_eq!(retry_of(403, &h(&[("retry-after", "3")]), now), after(3));
        let primary = h(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1042"),
        ]);
        assert_eq!(retry_of(403, &primary, now), after(42));
        assert_eq!(retry_of(429, &h(&[]), now), Retry::Backoff);
        assert_eq!(retry_of(502, &h(&[]), now), Retry::Backoff);
        assert_eq!(
            retry_of(403, &h(&[]), now),
            Retry::No,
            "a plain 403 is final"
        );
        assert_eq!(retry_of(422, &h(&[]), now), Retry::No);
    }

    #[test]
    fn detects_already_exists() {
        let v = json!({"message": "Validation Failed", "errors": [{"message": "A pull request already exists for o:b."}]});
        assert!(already_exists(&v));
        assert!(!already_exists(&json!({"message": "Validation Failed"})));
    }
}
