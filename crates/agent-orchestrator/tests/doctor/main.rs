//! `agent-orchestrator doctor`, the binary as a user runs it: each check failing on purpose
//! prints its line and its fix, and the exit code says whether tasks can run (1 when a
//! blocking check fails; warnings exit 0). The environment is built from nothing for each
//! run, so what the machine running the tests has set does not leak in.

#[path = "../common/mod.rs"]
mod common;
mod kube;
mod local;

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use common::BIN;

/// One doctor run: its exit code and its checklist.
pub struct Run {
    pub code: i32,
    pub out: String,
}

impl Run {
    /// The line of check `name`, and the fix under it when there is one.
    pub fn check(&self, name: &str) -> (&str, Option<&str>) {
        let mut lines = self.out.lines();
        let at = lines
            .position(|l| l.split_whitespace().nth(1) == Some(&format!("{name}:")))
            .unwrap_or_else(|| panic!("no line for {name} in:\n{}", self.out));
        let line = self.out.lines().nth(at).unwrap();
        let fix = self
            .out
            .lines()
            .nth(at + 1)
            .and_then(|l| l.strip_prefix("    fix: "));
        (line, fix)
    }

    pub fn has(&self, name: &str) -> bool {
        self.out
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some(&format!("{name}:")))
    }

    /// Assert check `name` has `mark` (`[ok]`, `[warn]`, `[FAIL]`), its line says `says`,
    /// and a problem comes with a fix that says `fix`.
    pub fn assert(&self, name: &str, mark: &str, says: &str, fix: &str) {
        let (line, got_fix) = self.check(name);
        assert!(line.starts_with(mark), "{name}: {line}\n{}", self.out);
        assert!(line.contains(says), "{name}: {line}\n{}", self.out);
        match mark {
            "[ok]" => assert_eq!(got_fix, None, "{}", self.out),
            _ => assert!(
                got_fix.is_some_and(|f| f.contains(fix)),
                "{name}: fix {got_fix:?}\n{}",
                self.out
            ),
        }
    }
}

/// What every run gets: a PATH with git but no claude, an empty HOME.
pub fn base_env(home: &Path) -> Vec<(String, OsString)> {
    vec![
        ("PATH".into(), "/usr/bin:/bin".into()),
        ("HOME".into(), home.into()),
    ]
}

/// Run `doctor ARGS` with only `env`.
pub fn doctor(args: &[&str], env: &[(String, OsString)]) -> Run {
    let out = Command::new(BIN)
        .arg("doctor")
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        out.stderr.is_empty(),
        "doctor wrote to stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Run {
        code: out.status.code().expect("doctor exited by a signal"),
        out: String::from_utf8(out.stdout).unwrap(),
    }
}

/// `(name, value)` pairs for [`doctor`].
pub fn vars(pairs: &[(&str, &dyn AsRef<std::ffi::OsStr>)]) -> Vec<(String, OsString)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_ref().to_owned()))
        .collect()
}
