//! Turning a client's request into a [`TaskSpec`], or saying exactly which field is wrong.
//!
//! The HTTP layer and the CLI both use [`TaskRequest`]; every rule lives here, once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::task::{Repository, TaskSpec};

/// The body of `POST /api/v1/tasks`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    /// The instruction for the agent. Required (or `task`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Accepted for compatibility with the original service: same as `prompt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<Repository>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_turns: Option<u32>,
    /// Wall-clock limit in seconds. Defaults to the server's `--default-timeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// Spending limit in US dollars for the agent run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_budget_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Non-secret environment variables for the worker. Names must match `[A-Za-z_][A-Za-z0-9_]*`
    /// and may not override the worker's own or secret variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
}

/// A field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ValidationError {
    ValidationError {
        field: field.into(),
        message: message.into(),
    }
}

/// Server-side limits that validation applies.
#[derive(Debug, Clone)]
pub struct Limits {
    pub default_timeout_seconds: u64,
    pub max_timeout_seconds: u64,
    pub max_prompt_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            default_timeout_seconds: 3600,
            max_timeout_seconds: 24 * 3600,
            max_prompt_bytes: 200 * 1024,
        }
    }
}

const MAX_LABELS: usize = 32;
const MAX_ENV: usize = 64;
const MAX_ENV_VALUE: usize = 8 * 1024;

/// Variables the worker sets itself or that carry secrets: a task may not override them.
const RESERVED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "SHELL",
    "USER",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "IS_SANDBOX",
    "NODE_OPTIONS",
    "GIT_ASKPASS",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
];
const RESERVED_ENV_PREFIXES: &[&str] = &["AO_", "LD_", "DYLD_", "ANTHROPIC_", "CLAUDE_", "GIT_"];

impl TaskRequest {
    /// Validate and normalize into a spec.
    pub fn validate(self, limits: &Limits) -> Result<TaskSpec, ValidationError> {
        let prompt = match (self.prompt, self.task) {
            (Some(p), Some(t)) if p != t => {
                return Err(invalid("task", "give either `prompt` or `task`, not both"));
            }
            (Some(p), _) => p,
            (None, Some(t)) => t,
            (None, None) => return Err(invalid("prompt", "is required")),
        };
        if prompt.trim().is_empty() {
            return Err(invalid("prompt", "must not be empty"));
        }
        if prompt.len() > limits.max_prompt_bytes {
            return Err(invalid(
                "prompt",
                format!(
                    "is {} bytes; the limit is {}",
                    prompt.len(),
                    limits.max_prompt_bytes
                ),
            ));
        }
        if prompt.contains('\0') {
            return Err(invalid("prompt", "must not contain NUL characters"));
        }
        let repository = self.repository.map(validate_repository).transpose()?;
        if let Some(m) = &self.model {
            validate_model(m)?;
        }
        if let Some(t) = self.max_turns
            && !(1..=1000).contains(&t)
        {
            return Err(invalid("max_turns", "must be between 1 and 1000"));
        }
        let timeout_seconds = self
            .timeout_seconds
            .unwrap_or(limits.default_timeout_seconds);
        if timeout_seconds == 0 || timeout_seconds > limits.max_timeout_seconds {
            return Err(invalid(
                "timeout_seconds",
                format!("must be between 1 and {}", limits.max_timeout_seconds),
            ));
        }
        if let Some(b) = self.max_budget_usd
            && !(b.is_finite() && b > 0.0 && b <= 10_000.0)
        {
            return Err(invalid(
                "max_budget_usd",
                "must be a number above 0 and at most 10000",
            ));
        }
        let labels = self.labels.unwrap_or_default();
        validate_labels(&labels)?;
        let env = self.env.unwrap_or_default();
        validate_env(&env)?;
        Ok(TaskSpec {
            prompt,
            repository,
            model: self.model,
            max_turns: self.max_turns,
            timeout_seconds,
            max_budget_usd: self.max_budget_usd,
            labels,
            env,
        })
    }
}

fn validate_repository(repo: Repository) -> Result<Repository, ValidationError> {
    let url = repo.url.trim().to_string();
    if url.is_empty() {
        return Err(invalid("repository.url", "must not be empty"));
    }
    if url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "repository.url",
            "must be a URL without spaces or control characters",
        ));
    }
    if url.starts_with('-') {
        return Err(invalid("repository.url", "must not start with '-'"));
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        if !matches!(scheme, "https" | "http" | "ssh" | "git" | "file") {
            return Err(invalid(
                "repository.url",
                format!("unsupported scheme `{scheme}`"),
            ));
        }
        let authority = rest.split('/').next().unwrap_or_default();
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && (userinfo.contains(':') || scheme.starts_with("http"))
        {
            return Err(invalid(
                "repository.url",
                "must not embed credentials; the worker authenticates with GITHUB_TOKEN",
            ));
        }
    } else if !url.starts_with('/') && !url.contains(':') {
        return Err(invalid(
            "repository.url",
            "must be an https://, ssh:// or git@host:path URL, or an absolute path",
        ));
    }
    if let Some(r) = &repo.git_ref {
        let bad = r.is_empty()
            || r.len() > 255
            || r.starts_with('-')
            || r.contains("..")
            || r.chars()
                .any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c));
        if bad {
            return Err(invalid("repository.ref", "is not a valid git ref name"));
        }
    }
    Ok(Repository {
        url,
        git_ref: repo.git_ref,
    })
}

fn validate_model(model: &str) -> Result<(), ValidationError> {
    let ok = !model.is_empty()
        && model.len() <= 128
        && model
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:-/@[]".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "model",
            "must be 1-128 characters of letters, digits and ._:-/@[]",
        ))
    }
}

fn validate_labels(labels: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    if labels.len() > MAX_LABELS {
        return Err(invalid("labels", format!("at most {MAX_LABELS} labels")));
    }
    for (k, v) in labels {
        let key_ok = !k.is_empty()
            && k.len() <= 63
            && k.starts_with(|c: char| c.is_ascii_alphanumeric())
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
        if !key_ok {
            return Err(invalid(
                format!("labels.{k}"),
                "label keys are 1-63 characters of letters, digits and -_./, starting alphanumeric",
            ));
        }
        if v.len() > 256 || v.chars().any(char::is_control) {
            return Err(invalid(
                format!("labels.{k}"),
                "label values are at most 256 characters, without control characters",
            ));
        }
    }
    Ok(())
}

fn validate_env(env: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    if env.len() > MAX_ENV {
        return Err(invalid("env", format!("at most {MAX_ENV} variables")));
    }
    for (k, v) in env {
        let name_ok = !k.is_empty()
            && k.len() <= 128
            && k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok {
            return Err(invalid(
                format!("env.{k}"),
                "names must match [A-Za-z_][A-Za-z0-9_]* (at most 128 characters)",
            ));
        }
        let upper = k.to_ascii_uppercase();
        if RESERVED_ENV.contains(&upper.as_str())
            || RESERVED_ENV_PREFIXES.iter().any(|p| upper.starts_with(p))
        {
            return Err(invalid(
                format!("env.{k}"),
                "is reserved for the worker or for secrets and cannot be set by a task",
            ));
        }
        if v.len() > MAX_ENV_VALUE || v.contains('\0') {
            return Err(invalid(
                format!("env.{k}"),
                format!("values are at most {MAX_ENV_VALUE} bytes, without NUL"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(prompt: &str) -> TaskRequest {
        TaskRequest {
            prompt: Some(prompt.into()),
            ..Default::default()
        }
    }

    fn field_of(r: TaskRequest) -> String {
        r.validate(&Limits::default()).unwrap_err().field
    }

    #[test]
    fn minimal_request_gets_defaults() {
        let spec = req("fix it").validate(&Limits::default()).unwrap();
        assert_eq!(spec.prompt, "fix it");
        assert_eq!(spec.timeout_seconds, 3600);
        assert!(spec.labels.is_empty() && spec.env.is_empty());
    }

    #[test]
    fn task_alias_is_the_prompt() {
        let r = TaskRequest {
            task: Some("legacy".into()),
            ..Default::default()
        };
        assert_eq!(r.validate(&Limits::default()).unwrap().prompt, "legacy");
        let both = TaskRequest {
            task: Some("a".into()),
            prompt: Some("b".into()),
            ..Default::default()
        };
        assert_eq!(field_of(both), "task");
    }

    #[test]
    fn prompt_rules() {
        assert_eq!(field_of(TaskRequest::default()), "prompt");
        assert_eq!(field_of(req("   ")), "prompt");
        assert_eq!(field_of(req("a\0b")), "prompt");
        let limits = Limits {
            max_prompt_bytes: 4,
            ..Default::default()
        };
        assert_eq!(req("12345").validate(&limits).unwrap_err().field, "prompt");
    }

    #[test]
    fn numeric_bounds() {
        assert_eq!(
            field_of(TaskRequest {
                max_turns: Some(0),
                ..req("x")
            }),
            "max_turns"
        );
        assert_eq!(
            field_of(TaskRequest {
                timeout_seconds: Some(0),
                ..req("x")
            }),
            "timeout_seconds"
        );
        assert_eq!(
            field_of(TaskRequest {
                timeout_seconds: Some(10 * 86_400),
                ..req("x")
            }),
            "timeout_seconds"
        );
        for b in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(
                field_of(TaskRequest {
                    max_budget_usd: Some(b),
                    ..req("x")
                }),
                "max_budget_usd"
            );
        }
    }

    #[test]
    fn env_names_are_validated_and_reserved_names_refused() {
        for bad in [
            "1X",
            "A-B",
            "",
            "PATH",
            "LD_PRELOAD",
            "ANTHROPIC_API_KEY",
            "GITHUB_TOKEN",
            "AO_X",
            "home",
        ] {
            let env = BTreeMap::from([(bad.to_string(), "v".to_string())]);
            let f = field_of(TaskRequest {
                env: Some(env),
                ..req("x")
            });
            assert_eq!(f, format!("env.{bad}"), "{bad}");
        }
        let env = BTreeMap::from([("RUST_LOG".to_string(), "debug".to_string())]);
        assert!(
            TaskRequest {
                env: Some(env),
                ..req("x")
            }
            .validate(&Limits::default())
            .is_ok()
        );
    }

    #[test]
    fn labels_are_validated() {
        let labels = BTreeMap::from([("team/x".to_string(), "a b".to_string())]);
        assert!(
            TaskRequest {
                labels: Some(labels),
                ..req("x")
            }
            .validate(&Limits::default())
            .is_ok()
        );
        let labels = BTreeMap::from([("-bad".to_string(), "v".to_string())]);
        assert_eq!(
            field_of(TaskRequest {
                labels: Some(labels),
                ..req("x")
            }),
            "labels.-bad"
        );
    }

    #[test]
    fn repository_rules() {
        let ok = |u: &str| {
            TaskRequest {
                repository: Some(Repository {
                    url: u.into(),
                    git_ref: Some("main".into()),
                }),
                ..req("x")
            }
            .validate(&Limits::default())
        };
        assert!(ok("https://github.com/o/r.git").is_ok());
        assert!(ok("git@github.com:o/r.git").is_ok());
        assert!(ok("/srv/git/r.git").is_ok());
        for bad in [
            "",
            "https://user:pw@github.com/o/r",
            "https://tok@github.com/o/r",
            "ftp://x/y",
            "relative/path",
            "--upload-pack=x",
            "https://a b",
        ] {
            assert_eq!(ok(bad).unwrap_err().field, "repository.url", "{bad}");
        }
        let r = TaskRequest {
            repository: Some(Repository {
                url: "/r".into(),
                git_ref: Some("a..b".into()),
            }),
            ..req("x")
        };
        assert_eq!(field_of(r), "repository.ref");
    }

    #[test]
    fn unknown_fields_are_refused_by_serde() {
        let err = serde_json::from_str::<TaskRequest>(r#"{"prompt":"x","bogus":1}"#).unwrap_err();
        assert!(err.to_string().contains("bogus"));
    }
}
