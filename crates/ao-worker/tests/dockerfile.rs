//! Static checks of `images/worker/Dockerfile`: it parses, pins its images and Claude Code
//! (to the same version as `scripts/install-claude.sh`), runs as non-root, and runs the worker.

use std::collections::BTreeMap;
use std::path::PathBuf;

const KNOWN: &[&str] = &[
    "FROM",
    "ARG",
    "ENV",
    "RUN",
    "COPY",
    "ADD",
    "WORKDIR",
    "USER",
    "ENTRYPOINT",
    "CMD",
    "LABEL",
    "EXPOSE",
    "VOLUME",
    "SHELL",
    "HEALTHCHECK",
    "STOPSIGNAL",
    "ONBUILD",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `(instruction, arguments)` with comments dropped and `\` continuations joined.
fn parse(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let t = line.trim();
        if current.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if !current.is_empty() && t.starts_with('#') {
            continue; // comment inside a continued instruction
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(t);
                let (ins, args) = current
                    .split_once(char::is_whitespace)
                    .unwrap_or((&current, ""));
                out.push((ins.to_ascii_uppercase(), args.trim().to_owned()));
                current.clear();
            }
        }
    }
    assert!(current.is_empty(), "dangling line continuation");
    out
}

/// Replaces `${NAME}` / `$NAME` with values from `vars`.
fn expand(s: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = s.to_owned();
    for (k, v) in vars {
        out = out
            .replace(&format!("${{{k}}}"), v)
            .replace(&format!("${k}"), v);
    }
    out
}

fn arg_default(args: &str) -> Option<(String, String)> {
    let (k, v) = args.split_once('=')?;
    Some((k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
}

fn script_version() -> String {
    let script = std::fs::read_to_string(root().join("scripts/install-claude.sh")).unwrap();
    let line = script
        .lines()
        .find(|l| l.starts_with("CLAUDE_CODE_VERSION="))
        .expect("version in script");
    line.split_once('=').unwrap().1.trim_matches('"').to_owned()
}

#[test]
fn worker_dockerfile_is_sound() {
    let text = std::fs::read_to_string(root().join("images/worker/Dockerfile")).unwrap();
    let instructions = parse(&text);
    for (ins, _) in &instructions {
        assert!(KNOWN.contains(&ins.as_str()), "unknown instruction {ins}");
    }

    // Global ARGs (before the first FROM) feed FROM lines; stage ARGs feed the stage.
    let mut globals = BTreeMap::new();
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    for (ins, args) in &instructions {
        match ins.as_str() {
            "ARG" if stages.is_empty() => globals.extend(arg_default(args)),
            "FROM" => stages.push(vec![(ins.clone(), args.clone())]),
            _ => stages
                .last_mut()
                .expect("instruction before FROM")
                .push((ins.clone(), args.clone())),
        }
    }
    assert!(stages.len() >= 2, "expected a builder and a runtime stage");

    for stage in &stages {
        let image = expand(stage[0].1.split_whitespace().next().unwrap(), &globals);
        let name = image.rsplit('/').next().unwrap();
        let (_, tag) = name
            .split_once(':')
            .unwrap_or_else(|| panic!("{image} is not pinned by tag"));
        assert!(
            !tag.is_empty() && tag != "latest" && !tag.contains('$'),
            "{image} is not pinned"
        );
    }
    let builder = stages
        .iter()
        .find(|s| s[0].1.contains("rust:"))
        .expect("rust builder stage");
    assert!(builder.iter().any(|(i, a)| i == "RUN"
        && a.contains("cargo build --release")
        && a.contains("-p agent-orchestrator")));

    let last = stages.last().unwrap();
    let mut vars = globals.clone();
    for (ins, args) in last {
        if ins == "ARG" {
            vars.extend(arg_default(args));
        }
    }
    let user = last
        .iter()
        .rev()
        .find(|(i, _)| i == "USER")
        .expect("final stage sets USER");
    let uid = user.1.split(':').next().unwrap();
    let uid: u32 = uid
        .parse()
        .unwrap_or_else(|_| panic!("USER {uid} is not numeric"));
    assert_ne!(uid, 0, "final stage runs as root");

    let install = last
        .iter()
        .filter(|(i, _)| i == "RUN")
        .map(|(_, a)| expand(a, &vars))
        .find(|a| a.contains("npm install") && a.contains("@anthropic-ai/claude-code"))
        .expect("claude-code npm install");
    assert!(
        !install.contains("--ignore-scripts"),
        "postinstall must run"
    );
    let pinned = install
        .split_whitespace()
        .find_map(|w| {
            w.trim_matches('"')
                .strip_prefix("@anthropic-ai/claude-code@")
        })
        .expect("claude-code version pinned");
    assert!(
        pinned.split('.').count() == 3 && pinned.split('.').all(|p| p.parse::<u32>().is_ok()),
        "not an exact version: {pinned}"
    );
    assert_eq!(
        pinned,
        script_version(),
        "image and scripts/install-claude.sh disagree"
    );

    let entry = last
        .iter()
        .rev()
        .find(|(i, _)| i == "ENTRYPOINT")
        .expect("ENTRYPOINT");
    let argv: Vec<String> = serde_json::from_str(&entry.1).expect("exec-form ENTRYPOINT");
    assert!(argv[0].ends_with("agent-orchestrator"), "{argv:?}");
    assert_eq!(argv.get(1).map(String::as_str), Some("worker"));
    assert!(last.iter().any(|(i, a)| i == "COPY"
        && a.contains("--from=builder")
        && a.contains("agent-orchestrator")));
    assert!(
        last.iter()
            .any(|(i, a)| i == "WORKDIR" && a == "/workspace")
    );
}

#[test]
fn parser_handles_continuations_and_comments() {
    let p = parse("# c\nFROM a:1 AS b\nRUN x \\\n  # inner\n  && y\n\nUSER 1\n");
    assert_eq!(
        p,
        [
            ("FROM".into(), "a:1 AS b".into()),
            ("RUN".into(), "x  && y".into()),
            ("USER".into(), "1".into())
        ]
    );
}
