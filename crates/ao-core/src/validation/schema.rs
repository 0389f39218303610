//! The rules of this module as JSON Schema (2020-12, as OpenAPI 3.1 uses it), so that the
//! published description accepts exactly the requests that validation accepts. Built from the
//! same constants and tables as the checks, and with the server's configured limits.
//!
//! Regexes use only what ECMA-262, Rust's `regex` and Python's `re` read alike; character
//! classes spell out Unicode `White_Space` and `Cc` (what `char::is_whitespace` and
//! `char::is_control` test) instead of `\s`, which the three engines define differently.

use serde_json::{Value, json};

use super::env::{ENV_NAME_PATTERN, MAX_ENV, MAX_ENV_VALUE, refused_pattern};
use super::{Limits, MAX_BUDGET_USD, MAX_LABEL_VALUE, MAX_LABELS, MAX_REF, MAX_TURNS, MAX_URL};

/// Unicode `White_Space`, as a character-class body.
const WS: &str = r"\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// `White_Space` and `Cc` together, as a character-class body.
const WS_OR_CONTROL: &str =
    r"\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// A prompt: not only whitespace, no NUL.
fn prompt_pattern() -> String {
    format!(r"^[^\u0000]*[^\u0000{WS}][^\u0000]*$")
}

/// A clone URL, as `validate_repository` reads it: surrounding whitespace is trimmed; then
/// either `scheme://authority[/rest]` with a known scheme and no password (none at all for
/// http(s)), or, with no `://` anywhere, an absolute path or an scp-like `host:path`.
pub fn url_pattern() -> String {
    let c = format!("[^{WS_OR_CONTROL}]");
    let no_at = format!("[^{WS_OR_CONTROL}/@]*");
    let user = format!("[^{WS_OR_CONTROL}/:]*");
    let not_hyphen = format!("[^{WS_OR_CONTROL}\\-]");
    let with_scheme =
        format!("(?:https?://{no_at}|(?:ssh|git|file)://(?:{no_at}|{user}@{no_at}))(?:/{c}*)?");
    let plain = format!("(?!{c}*://)(?:/{c}*|(?:{not_hyphen}{c}*)?:{c}*)");
    format!("^[{WS}]*(?:{with_scheme}|{plain})[{WS}]*$")
}

/// A git ref name as `validate_repository` accepts it.
fn ref_pattern() -> String {
    let r = format!(r"[^{WS_OR_CONTROL}~^:?*\[\\]");
    format!(r"^(?!-)(?!{r}*\.\.){r}{{1,{MAX_REF}}}$")
}

/// `null`, or a string of this schema.
fn nullable(mut s: Value) -> Value {
    s["type"] = json!(["string", "null"]);
    s
}

/// The `Repository` object of a request.
pub fn repository() -> Value {
    json!({
        "type": "object",
        "description": "A git repository for the agent to work in.",
        "required": ["url"],
        "additionalProperties": false,
        "properties": {
            "url": {
                "type": "string",
                "description": format!("Clone URL: https://, http://, ssh://, git:// or file:// \
                    (credentials are refused; for http(s) any user part is), `git@host:path`, or \
                    an absolute path. At most {MAX_URL} characters once surrounding whitespace \
                    is trimmed."),
                "pattern": url_pattern(),
            },
            "ref": nullable(json!({
                "description": "Branch, tag or commit to start from. Defaults to the remote's default branch.",
                "pattern": ref_pattern(),
                "maxLength": MAX_REF,
            })),
        },
    })
}

/// The body of `POST /api/v1/tasks` with the server's `limits`: one object schema for a
/// request with `prompt`, one for a request with `task` (each complete, so that generators
/// need not merge `oneOf` with sibling keywords).
pub fn task_request(limits: &Limits) -> Value {
    let text = json!({
        "type": "string",
        "minLength": 1,
        "maxLength": limits.max_prompt_bytes,
        "pattern": prompt_pattern(),
        "description": format!(
            "The instruction for the agent: at most {} bytes of UTF-8, not only whitespace, no NUL.",
            limits.max_prompt_bytes
        ),
    });
    let absent = json!({"type": "null", "description": "Give exactly one of `prompt` and `task`."});
    let variant = |given: &str, other: &str, title: &str| {
        let mut properties = common_properties(limits);
        properties[given] = text.clone();
        properties[other] = absent.clone();
        json!({
            "title": title,
            "type": "object",
            "additionalProperties": false,
            "required": [given],
            "properties": properties,
        })
    };
    json!({
        "type": "object",
        "description": "The body of `POST /api/v1/tasks`: the instruction as `prompt`, or as \
            `task` (the original service's field), never both. Unknown fields are refused.",
        "oneOf": [
            variant("prompt", "task", "With prompt"),
            variant("task", "prompt", "With task (compatibility)"),
        ],
    })
}

/// Every field but `prompt` and `task`.
fn common_properties(limits: &Limits) -> Value {
    let label_key = "^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$";
    json!({
        "repository": {"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/Repository"}]},
        "model": {
            "type": ["string", "null"],
            "description": "Model name or alias passed to the agent.",
            "pattern": r"^[A-Za-z0-9._:/@\[\]-]{1,128}$",
        },
        "max_turns": {
            "type": ["integer", "null"],
            "description": "Most agent turns.",
            "minimum": 1,
            "maximum": MAX_TURNS,
        },
        "timeout_seconds": {
            "type": ["integer", "null"],
            "description": format!("Wall-clock limit in seconds. Defaults to {} (the server's `--default-timeout`); at most `--max-timeout`.", limits.default_timeout_seconds),
            "minimum": 1,
            "maximum": limits.max_timeout_seconds,
        },
        "max_budget_usd": {
            "type": ["number", "null"],
            "description": "Spending limit in US dollars for the agent run.",
            "exclusiveMinimum": 0,
            "maximum": MAX_BUDGET_USD,
        },
        "labels": {
            "type": ["object", "null"],
            "description": "Labels to filter tasks by (`label=key=value` on the list route).",
            "maxProperties": MAX_LABELS,
            "propertyNames": {"pattern": label_key},
            "additionalProperties": {
                "type": "string",
                "maxLength": MAX_LABEL_VALUE,
                "pattern": r"^[^\u0000-\u001f\u007f-\u009f]*$",
            },
        },
        "env": {
            "type": ["object", "null"],
            "description": "Non-secret environment variables for the worker. Refused: the \
                worker's own variables, names that look like secrets (pass secrets with \
                `--worker-pass-env` or the Kubernetes Secret instead), and names that change \
                how programs load code, trust certificates or route traffic.",
            "maxProperties": MAX_ENV,
            "propertyNames": {
                "pattern": ENV_NAME_PATTERN,
                "not": {"pattern": refused_pattern()},
            },
            "additionalProperties": {
                "type": "string",
                "maxLength": MAX_ENV_VALUE,
                "pattern": r"^[^\u0000]*$",
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::validation::{TaskRequest, env::refused_by};

    fn re(p: &str) -> regex::Regex {
        regex::Regex::new(p).unwrap()
    }

    fn accepted(r: TaskRequest) -> bool {
        r.validate(&Limits::default()).is_ok()
    }

    const SAMPLES: &[&str] = &[
        "", " ", "a", "\t\n", "\u{1c}", "\u{feff}", "x\0", "\u{3000}", "ok text", "\u{85}",
        "\u{a0}x", "é", "a\u{7f}", "-x", "a/b", "x\n",
    ];

    #[test]
    fn prompt_pattern_agrees_with_validation() {
        let p = re(&prompt_pattern());
        for s in SAMPLES {
            let r = TaskRequest {
                prompt: Some(s.to_string()),
                ..Default::default()
            };
            assert_eq!(p.is_match(s) && !s.is_empty(), accepted(r), "{s:?}");
        }
    }

    #[test]
    fn label_patterns_agree_with_validation() {
        let doc = task_request(&Limits::default());
        let labels = &doc["oneOf"][0]["properties"]["labels"];
        let key = re(labels["propertyNames"]["pattern"].as_str().unwrap());
        let value = re(labels["additionalProperties"]["pattern"].as_str().unwrap());
        let long = "k".repeat(64);
        for k in [
            "a",
            "-a",
            "team/x",
            "a b",
            "A.b_c-d",
            "é",
            long.as_str(),
            &long[1..],
        ] {
            let r = TaskRequest {
                prompt: Some("x".into()),
                labels: Some(BTreeMap::from([(k.to_string(), "v".to_string())])),
                ..Default::default()
            };
            assert_eq!(key.is_match(k), accepted(r), "{k:?}");
        }
        for v in SAMPLES {
            let r = TaskRequest {
                prompt: Some("x".into()),
                labels: Some(BTreeMap::from([("k".to_string(), v.to_string())])),
                ..Default::default()
            };
            assert_eq!(value.is_match(v), accepted(r), "{v:?}");
        }
    }

    #[test]
    fn env_name_patterns_agree_with_validation() {
        let name = re(ENV_NAME_PATTERN);
        let refused = re(&refused_pattern());
        let long = "A".repeat(129);
        for n in [
            "RUST_LOG",
            "1X",
            "A-B",
            "_x",
            "NPM_TOKEN",
            "https_proxy",
            "env",
            "ENVX",
            "PATH",
            "path",
            "GIT_DIR",
            "ld_preload",
            "MY_SECRET_THING",
            "NODE_ENV",
            "TOKENIZERS_X",
            "SSL_CERT_FILE",
            long.as_str(),
            &long[1..],
            "Ä",
        ] {
            let r = TaskRequest {
                prompt: Some("x".into()),
                env: Some(BTreeMap::from([(n.to_string(), "v".to_string())])),
                ..Default::default()
            };
            let by_schema = name.is_match(n) && !refused.is_match(n);
            assert_eq!(by_schema, accepted(r), "{n:?}");
            if name.is_match(n) {
                assert_eq!(refused.is_match(n), refused_by(n).is_some(), "{n:?}");
            }
        }
    }

    #[test]
    fn limits_are_the_servers() {
        let limits = Limits {
            max_timeout_seconds: 60,
            max_prompt_bytes: 10,
            ..Limits::default()
        };
        let doc = task_request(&limits);
        for v in doc["oneOf"].as_array().unwrap() {
            assert_eq!(v["properties"]["timeout_seconds"]["maximum"], 60);
            assert_eq!(v["properties"]["max_turns"]["minimum"], 1);
        }
        assert_eq!(doc["oneOf"][0]["properties"]["prompt"]["maxLength"], 10);
        assert_eq!(doc["oneOf"][1]["properties"]["task"]["maxLength"], 10);
        assert_eq!(doc["oneOf"][1]["properties"]["prompt"]["type"], "null");
    }
}
