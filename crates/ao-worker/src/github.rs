//! Opening the pull request: which GitHub repository a clone URL names, and the REST calls
//! (`POST /repos/{o}/{r}/pulls`, and on "already exists" `GET …/pulls?head=o:branch`).

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

    /// Opens the pull request, or returns the open one for the same head. Retries 5xx/429 a
    /// few times (safe: a duplicate create is answered with 422 and then looked up).
    pub async fn open_pull(&self, pr: &NewPull<'_>) -> Result<PullRequest, GitHubError> {
        let url = format!("{}/repos/{}/{}/pulls", self.api, self.owner, self.repo);
        let body = json!({"title": pr.title, "head": pr.head, "base": pr.base, "body": pr.body});
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let resp = self
                .request(reqwest::Method::POST, &url)
                .json(&body)
                .send()
                .await
                .map_err(|e| {
                    GitHubError::Transport(self.scrub.scrub(&e.without_url().to_string()))
                });
            let (status, value) = match resp {
                Ok(r) => {
                    let s = r.status().as_u16();
                    (s, r.json::<Value>().await.unwrap_or(Value::Null))
                }
                Err(e) if attempt < 4 => {
                    tracing::debug!(error = %e, "pull request create failed, retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(500 * u64::from(attempt)))
                        .await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match status {
                201 | 200 => return pull_from(&value),
                422 if already_exists(&value) => return self.find_open(pr.head).await,
                429 | 500..=599 if attempt < 4 => {
                    tokio::time::sleep(std::time::Duration::from_millis(500 * u64::from(attempt)))
                        .await;
                }
                _ => return Err(self.status_error(status, &value)),
            }
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
    fn detects_already_exists() {
        let v = json!({"message": "Validation Failed", "errors": [{"message": "A pull request already exists for o:b."}]});
        assert!(already_exists(&v));
        assert!(!already_exists(&json!({"message": "Validation Failed"})));
    }
}
