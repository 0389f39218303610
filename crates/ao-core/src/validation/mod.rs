//! Turning a client's request into a [`TaskSpec`], or saying exactly which field is wrong.
//!
//! The HTTP layer and the CLI both use [`TaskRequest`]; every rule lives here, once:
//! [`env`] holds the rules for environment names, [`whole`] reads whole numbers however JSON
//! spells them, and [`schema`] states the same rules as the JSON Schema that the OpenAPI
//! description publishes.

pub mod env;
pub mod schema;
pub mod whole;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::task::{Repository, TaskSpec};

/// The body of `POST /api/v1/tasks`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    /// The instruction for the agent. Give exactly one of `prompt` and `task`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Accepted for compatibility with the original service: same as `prompt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<Repository>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Most agent turns, 1 to 1000. A whole number, which JSON may also spell `10.0`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole::option"
    )]
    pub max_turns: Option<u32>,
    /// Wall-clock limit in seconds. Defaults to the server's `--default-timeout`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "whole::option"
    )]
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

/// Most labels one task may carry.
pub const MAX_LABELS: usize = 32;
/// Longest label value, in characters.
pub const MAX_LABEL_VALUE: usize = 256;
/// Longest `max_turns`.
pub const MAX_TURNS: u32 = 1000;
/// Largest `max_budget_usd`.
pub const MAX_BUDGET_USD: f64 = 10_000.0;
/// Longest repository URL, in characters.
pub const MAX_URL: usize = 2048;
/// Longest git ref, in characters.
pub const MAX_REF: usize = 255;

impl TaskRequest {
    /// Validate and normalize into a spec.
    pub fn validate(self, limits: &Limits) -> Result<TaskSpec, ValidationError> {
        let prompt = match (self.prompt, self.task) {
            (Some(_), Some(_)) => {
                return Err(invalid("task", "give either `prompt` or `task`, not both"));
            }
            (Some(p), None) => p,
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
            && !(1..=MAX_TURNS).contains(&t)
        {
            return Err(invalid(
                "max_turns",
                format!("must be between 1 and {MAX_TURNS}"),
            ));
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
            && !(b.is_finite() && b > 0.0 && b <= MAX_BUDGET_USD)
        {
            return Err(invalid(
                "max_budget_usd",
                "must be a number above 0 and at most 10000",
            ));
        }
        let labels = self.labels.unwrap_or_default();
        validate_labels(&labels)?;
        let env = self.env.unwrap_or_default();
        env::validate_env(&env)?;
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
    if url.chars().count() > MAX_URL || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "repository.url",
            format!(
                "must be a URL of at most {MAX_URL} characters, without spaces or control characters"
            ),
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
            || r.chars().count() > MAX_REF
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
        if v.chars().count() > MAX_LABEL_VALUE || v.chars().any(char::is_control) {
            return Err(invalid(
                format!("labels.{k}"),
                format!(
                    "label values are at most {MAX_LABEL_VALUE} characters, without control characters"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
