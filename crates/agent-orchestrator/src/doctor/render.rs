//! The checklist `doctor` prints: one line per check (✓, ! or ✗, in colour on a terminal;
//! `[ok]`, `[warn]`, `[FAIL]` otherwise, for logs and pipes), the fix under each problem,
//! and a last line saying whether tasks can run.

use std::fmt::Write;

use super::{Check, CheckStatus, blocking};
use crate::config::{RuntimeKind, ServeArgs};

pub(crate) fn checklist(args: &ServeArgs, checks: &[Check], color: bool) -> String {
    let runtime = match args.runtime {
        RuntimeKind::Local => "local",
        RuntimeKind::Kubernetes => "kubernetes",
    };
    let worker = match &args.worker_command {
        None if args.runtime == RuntimeKind::Local => "the built-in Claude Code worker".to_owned(),
        None => "worker pods".to_owned(),
        Some(cmd) => format!("the worker command {}", cmd.display()),
    };
    let mut out = format!("agent-orchestrator doctor: runtime {runtime}, {worker}\n");
    for c in checks {
        let _ = writeln!(out, "{} {}: {}", mark(c.status, color), c.name, c.message);
        if let Some(fix) = c.fix.as_deref().filter(|_| c.status != CheckStatus::Ok) {
            let _ = writeln!(out, "    fix: {fix}");
        }
    }
    let warnings = checks
        .iter()
        .filter(|c| c.status == CheckStatus::Warn)
        .count();
    let failed = checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .count();
    let verdict = if blocking(checks) {
        format!("{failed} problem(s) stop tasks from running; fix them and run doctor again")
    } else if warnings > 0 {
        format!("tasks can run; {warnings} warning(s)")
    } else {
        "tasks can run".to_owned()
    };
    let _ = writeln!(out, "{verdict}");
    out
}

fn mark(status: CheckStatus, color: bool) -> &'static str {
    match (status, color) {
        (CheckStatus::Ok, true) => "\x1b[32m✓\x1b[0m",
        (CheckStatus::Warn, true) => "\x1b[33m!\x1b[0m",
        (CheckStatus::Fail, true) => "\x1b[31m✗\x1b[0m",
        (CheckStatus::Ok, false) => "[ok]  ",
        (CheckStatus::Warn, false) => "[warn]",
        (CheckStatus::Fail, false) => "[FAIL]",
    }
}

#[cfg(test)]
mod tests {
    use super::super::{fail, ok, warn};
    use super::*;

    fn args() -> ServeArgs {
        match crate::config::parse_cli(["ao", "doctor"]).unwrap().command {
            crate::cli::Command::Doctor(a) => *a,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn each_line_has_its_mark_and_each_problem_its_fix() {
        let checks = [
            ok("git", "git version 2.47"),
            warn(
                "github",
                "GITHUB_TOKEN is not set",
                "export GITHUB_TOKEN=...",
            ),
            fail(
                "claude_code",
                "Claude Code not found",
                "run scripts/install-claude.sh",
            ),
        ];
        let plain = checklist(&args(), &checks, false);
        let want = "agent-orchestrator doctor: runtime local, the built-in Claude Code worker\n\
                    [ok]   git: git version 2.47\n\
                    [warn] github: GITHUB_TOKEN is not set\n    fix: export GITHUB_TOKEN=...\n\
                    [FAIL] claude_code: Claude Code not found\n    fix: run scripts/install-claude.sh\n\
                    1 problem(s) stop tasks from running; fix them and run doctor again\n";
        assert_eq!(plain, want);
        let tty = checklist(&args(), &checks[..2], true);
        assert!(
            tty.contains("✓")
                && tty.contains("!")
                && tty.ends_with("tasks can run; 1 warning(s)\n"),
            "{tty}"
        );
    }
}
