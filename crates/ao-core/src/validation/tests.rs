//! Unit tests of request validation.

use std::collections::BTreeMap;

use super::*;
use crate::task::Repository;

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
    // Both, even equal, is refused: the schema says exactly one of them.
    let same = TaskRequest {
        task: Some("a".into()),
        prompt: Some("a".into()),
        ..Default::default()
    };
    assert_eq!(field_of(same), "task");
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
        "NPM_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "X_API_KEY",
        "DB_PASSWORD",
        "BASH_ENV",
        "ENV",
        "HTTPS_PROXY",
        "https_proxy",
        "NODE_EXTRA_CA_CERTS",
        "NODE_OPTIONS",
        "PYTHONPATH",
        "SSL_CERT_FILE",
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

#[test]
fn whole_number_floats_are_accepted_for_integer_fields() {
    let r: TaskRequest =
        serde_json::from_str(r#"{"prompt":"x","max_turns":10.0,"timeout_seconds":359268.0}"#)
            .unwrap();
    let limits = Limits {
        max_timeout_seconds: 400_000,
        ..Limits::default()
    };
    let spec = r.validate(&limits).unwrap();
    assert_eq!((spec.max_turns, spec.timeout_seconds), (Some(10), 359_268));
    assert!(serde_json::from_str::<TaskRequest>(r#"{"prompt":"x","max_turns":1.5}"#).is_err());
}
