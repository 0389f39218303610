//! The git side of a task: clone, branch, commit and push with the `git` CLI.
//!
//! Credentials: for http(s) remotes the GitHub token reaches git only through the environment
//! (`GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_n`/`GIT_CONFIG_VALUE_n` setting
//! `http.<scheme>://<host>/.extraHeader` to a basic-auth header), scoped to the remote's host.
//! It is never in a URL, `.git/config`, an argument, a log line or an error (git's stderr is
//! scrubbed). git runs with a cleared environment plus an allowlist, `GIT_TERMINAL_PROMPT=0`
//! and a fixed commit identity.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use secrecy::{ExposeSecret, SecretString};
use tokio::process::Command;

use crate::scrub::Scrubber;

/// Variables git may inherit from the worker (proxies, CA bundles, ssh agent, test isolation).
const PASS_ENV: &[&str] = &[
    "HOME",
    "PATH",
    "LANG",
    "LC_ALL",
    "TZ",
    "TMPDIR",
    "USER",
    "SSH_AUTH_SOCK",
    "GIT_SSH_COMMAND",
    "GIT_CONFIG_NOSYSTEM",
    "GIT_CONFIG_GLOBAL",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
];

/// A failed git operation. `detail` is git's (scrubbed, truncated) stderr.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git {op} failed: {detail}")]
    Failed { op: &'static str, detail: String },
    #[error("cannot run git: {0}")]
    Spawn(String),
    #[error("ref {0:?} not found in the repository")]
    UnknownRef(String),
    /// git's `safe.directory` check: the repository belongs to another user than the one the
    /// worker runs as (typically a local-path remote of the orchestrator's, with
    /// `--worker-user`). git refuses it on purpose: a repository's config can run commands.
    #[error(
        "git {op} refused {repo}: it belongs to another user than the worker's (uid {uid}), and git does not use other users' repositories (\"dubious ownership\"). Serve it over the network (https, ssh, git://), give it to the worker user, or trust this one path with `safe.directory = {repo}` in the system git config (/etc/gitconfig)"
    )]
    NotOwned {
        op: &'static str,
        repo: String,
        uid: u32,
    },
}

/// How to run git for one task.
pub struct Git {
    home: Option<PathBuf>,
    author_name: String,
    author_email: String,
    /// (config key, header value) for http(s) remotes with a token.
    auth: Option<(String, SecretString)>,
    scrub: Scrubber,
}

/// Where the task's branch starts.
#[derive(Debug, Clone)]
pub struct Base {
    /// Branch a pull request should target.
    pub branch: String,
    pub sha: String,
}

impl Git {
    pub fn new(
        home: Option<PathBuf>,
        author: (String, String),
        remote_url: &str,
        token: Option<&SecretString>,
        scrub: Scrubber,
    ) -> Self {
        let auth = token.and_then(|t| {
            let origin = http_origin(remote_url)?;
            use base64::Engine;
            let basic = base64::engine::general_purpose::STANDARD
                .encode(format!("x-access-token:{}", t.expose_secret()));
            Some((
                format!("http.{origin}/.extraHeader"),
                SecretString::from(format!("Authorization: Basic {basic}")),
            ))
        });
        Git {
            home,
            author_name: author.0,
            author_email: author.1,
            auth,
            scrub,
        }
    }

    fn command(&self, cwd: &Path) -> Command {
        let mut c = Command::new("git");
        c.current_dir(cwd)
            .env_clear()
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for k in PASS_ENV {
            if let Some(v) = std::env::var_os(k) {
                c.env(k, v);
            }
        }
        if let Some(h) = &self.home {
            c.env("HOME", h);
        }
        c.env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", &self.author_name)
            .env("GIT_AUTHOR_EMAIL", &self.author_email)
            .env("GIT_COMMITTER_NAME", &self.author_name)
            .env("GIT_COMMITTER_EMAIL", &self.author_email)
            .env("GIT_CONFIG_KEY_0", "commit.gpgsign")
            .env("GIT_CONFIG_VALUE_0", "false");
        match &self.auth {
            Some((key, value)) => {
                c.env("GIT_CONFIG_COUNT", "2")
                    .env("GIT_CONFIG_KEY_1", key)
                    .env("GIT_CONFIG_VALUE_1", value.expose_secret());
            }
            None => {
                c.env("GIT_CONFIG_COUNT", "1");
            }
        }
        c
    }

    async fn run(&self, op: &'static str, cwd: &Path, args: &[&str]) -> Result<String, GitError> {
        let out = self
            .command(cwd)
            .args(args)
            .output()
            .await
            .map_err(|e| GitError::Spawn(e.to_string()))?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned());
        }
        let stderr = self.scrub.scrub(&String::from_utf8_lossy(&out.stderr));
        if let Some(repo) = refused_repository(&stderr) {
            tracing::warn!(op, repo, "git refused a repository of another user");
            return Err(GitError::NotOwned {
                op,
                repo: repo.to_owned(),
                uid: nix::unistd::geteuid().as_raw(),
            });
        }
        let detail = crate::truncate(stderr.trim(), 500);
        tracing::warn!(op, code = out.status.code(), "git failed");
        Err(GitError::Failed { op, detail })
    }

    /// Clones `url` into `dest` (which must not exist or be empty).
    pub async fn clone(&self, url: &str, dest: &Path) -> Result<(), GitError> {
        let parent = dest.parent().unwrap_or(Path::new("."));
        let dest_s = dest.to_string_lossy();
        self.run(
            "clone",
            parent,
            &[
                "clone",
                "--quiet",
                "--no-recurse-submodules",
                "--",
                url,
                &dest_s,
            ],
        )
        .await?;
        Ok(())
    }

    /// Checks out a new `branch` at `git_ref` (a branch, tag or commit; default branch if
    /// `None`) and tells where it starts.
    pub async fn start_branch(
        &self,
        repo: &Path,
        git_ref: Option<&str>,
        branch: &str,
    ) -> Result<Base, GitError> {
        let default = self
            .run("rev-parse", repo, &["rev-parse", "--abbrev-ref", "HEAD"])
            .await?;
        let (base_branch, start) = match git_ref {
            None => (default, "HEAD".to_owned()),
            Some(r) => {
                let remote = format!("refs/remotes/origin/{r}");
                if self.resolve(repo, &remote).await.is_some() {
                    (r.to_owned(), remote)
                } else if self.resolve(repo, r).await.is_some() {
                    (default, r.to_owned())
                } else {
                    return Err(GitError::UnknownRef(r.to_owned()));
                }
            }
        };
        let sha = self
            .resolve(repo, &start)
            .await
            .ok_or_else(|| GitError::UnknownRef(start.clone()))?;
        self.run(
            "checkout",
            repo,
            &["checkout", "--quiet", "-b", branch, &sha],
        )
        .await?;
        Ok(Base {
            branch: base_branch,
            sha,
        })
    }

    async fn resolve(&self, repo: &Path, rev: &str) -> Option<String> {
        let spec = format!("{rev}^{{commit}}");
        self.run(
            "rev-parse",
            repo,
            &["rev-parse", "--verify", "--quiet", &spec],
        )
        .await
        .ok()
    }

    /// Commits every change in the working tree (untracked files included) if there is any.
    /// Returns the resulting `HEAD`.
    pub async fn commit_all(&self, repo: &Path, message: &str) -> Result<String, GitError> {
        let status = self.run("status", repo, &["status", "--porcelain"]).await?;
        if !status.is_empty() {
            self.run("add", repo, &["add", "-A"]).await?;
            self.run(
                "commit",
                repo,
                &["commit", "--quiet", "--no-verify", "-m", message],
            )
            .await?;
        }
        self.run("rev-parse", repo, &["rev-parse", "HEAD"]).await
    }

    /// Pushes `HEAD` to `refs/heads/<branch>` on `origin`.
    pub async fn push(&self, repo: &Path, branch: &str) -> Result<(), GitError> {
        let refspec = format!("HEAD:refs/heads/{branch}");
        self.run("push", repo, &["push", "--quiet", "origin", &refspec])
            .await?;
        Ok(())
    }
}

/// The repository git refused for belonging to another user, from its stderr.
fn refused_repository(stderr: &str) -> Option<&str> {
    let rest = stderr
        .split("detected dubious ownership in repository at '")
        .nth(1)?;
    rest.split('\'').next().filter(|r| !r.is_empty())
}

/// `scheme://host[:port]` of an http(s) URL, without any userinfo.
fn http_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let authority = rest.split('/').next()?;
    let host = authority.rsplit('@').next()?;
    (!host.is_empty()).then(|| format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            http_origin("https://github.com/o/r.git").as_deref(),
            Some("https://github.com")
        );
        assert_eq!(
            http_origin("http://u@h:8080/x").as_deref(),
            Some("http://h:8080")
        );
        assert_eq!(http_origin("git@github.com:o/r.git"), None);
        assert_eq!(http_origin("/tmp/repo.git"), None);
        assert_eq!(http_origin("ssh://git@github.com/o/r"), None);
    }

    #[test]
    fn a_refused_repository_is_named() {
        let stderr = "fatal: detected dubious ownership in repository at '/srv/r.git'\nTo add an exception for this directory, call:\n";
        assert_eq!(refused_repository(stderr), Some("/srv/r.git"));
        assert_eq!(refused_repository("fatal: repository not found"), None);
        let e = GitError::NotOwned {
            op: "clone",
            repo: "/srv/r.git".into(),
            uid: 65534,
        };
        let msg = e.to_string();
        assert!(
            msg.contains("uid 65534") && msg.contains("safe.directory = /srv/r.git"),
            "{msg}"
        );
    }

    #[test]
    fn token_goes_to_env_only_for_http_remotes() {
        let t = SecretString::from("tok_1234567");
        let g = Git::new(
            None,
            ("a".into(), "b".into()),
            "https://github.com/o/r",
            Some(&t),
            Scrubber::default(),
        );
        assert_eq!(
            g.auth.as_ref().unwrap().0,
            "http.https://github.com/.extraHeader"
        );
        assert!(
            g.auth
                .as_ref()
                .unwrap()
                .1
                .expose_secret()
                .starts_with("Authorization: Basic ")
        );
        let g = Git::new(
            None,
            ("a".into(), "b".into()),
            "/tmp/x.git",
            Some(&t),
            Scrubber::default(),
        );
        assert!(g.auth.is_none());
    }
}
