//! The fresh machine: the README's run command and quick start, as written.
//!
//! Two stand-ins keep it offline and quick, and neither changes the path the run command
//! takes: npm installs the pinned Claude Code from its cache (`npm_config_offline`; the
//! cache `scripts/install-claude.sh` filled before the tests), into a fresh
//! `CLAUDE_PREFIX` rather than the checkout's `.tools/`; and `cargo` is a script that runs
//! the binary these tests were built with, not a release build of it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ao_testkit::{FakeAnthropic, Script, Turn};

use crate::common::{BIN, script};
use crate::readme;
use crate::server::Server;

const KEY: &str = "sk-ant-fresh-4d1c9e7a2b";
const ANSWER: &str = "Bonjour ! Je m'appelle Claude.";

/// npm's cache as the user running the tests has it (filled by scripts/install-claude.sh).
fn npm_cache() -> OsString {
    let out = Command::new("npm")
        .args(["config", "get", "cache"])
        .output()
        .expect("npm is needed (scripts/install-claude.sh installs Claude Code with it)");
    assert!(out.status.success(), "npm config get cache failed");
    String::from_utf8(out.stdout).unwrap().trim().into()
}

/// `cargo run ... -- ARGS` → this test's build of the binary with ARGS.
fn fake_cargo(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    script(
        &bin,
        "cargo",
        &format!(
            "[ \"$1\" = run ] || {{ echo \"cargo stand-in: only run\" >&2; exit 2; }}\n\
             while [ $# -gt 0 ] && [ \"$1\" != -- ]; do shift; done\n\
             [ $# -gt 0 ] && shift\n\
             exec '{BIN}' \"$@\""
        ),
    );
    bin
}

fn bash(line: &str, cwd: &Path, env: &[(String, OsString)]) -> (bool, String) {
    let out = Command::new("bash")
        .args(["-c", line])
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("$ {line}\n{text}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_run_command_on_a_fresh_machine_runs_claude_code() {
    let run = readme::run_command();
    let (server_lines, client_lines) = readme::quick_start();
    assert_eq!(
        server_lines,
        [
            "export ANTHROPIC_API_KEY=sk-ant-...".to_owned(),
            run.clone()
        ],
        "the quick start exports the key, then runs the run command"
    );
    let anthropic =
        FakeAnthropic::start(Script::new().api_key(KEY).turn(Turn::text_only(ANSWER))).await;
    let dir = tempfile::tempdir().unwrap();
    let (home, prefix) = (dir.path().join("home"), dir.path().join("claude"));
    std::fs::create_dir(&home).unwrap();
    // This machine's PATH (npm, git), less every folder with a `claude`.
    let system: Vec<PathBuf> = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .filter(|d| d.is_absolute() && !d.join("claude").exists())
        .collect();
    let path = std::env::join_paths(std::iter::once(fake_cargo(dir.path())).chain(system)).unwrap();
    let path = path.to_string_lossy().into_owned();
    let which = Command::new("sh")
        .args(["-c", "command -v claude"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(!which.status.success(), "this PATH has a claude: {path}");
    let s = |v: &dyn AsRef<std::ffi::OsStr>| v.as_ref().to_owned();
    let mut env: Vec<(String, OsString)> = vec![
        ("PATH".into(), s(&path)),
        ("HOME".into(), s(&home)),
        ("ANTHROPIC_API_KEY".into(), s(&KEY)),
        ("ANTHROPIC_BASE_URL".into(), s(&anthropic.base_url())),
        ("CLAUDE_PREFIX".into(), s(&prefix)),
        ("npm_config_cache".into(), npm_cache()),
        ("npm_config_offline".into(), s(&"true")),
        ("npm_config_update_notifier".into(), s(&"false")),
        ("AO_LISTEN".into(), s(&"127.0.0.1:0")),
        ("AO_DATA_DIR".into(), s(&dir.path().join("data"))),
        ("AO_LOG_FORMAT".into(), s(&"json")),
    ];
    let root = readme::root();
    let server = Server::start(
        Path::new("bash"),
        &["-c", &run],
        &root,
        &env,
        Duration::from_secs(120),
    );
    let installed = prefix.join("node_modules/.bin/claude");
    assert!(
        installed.exists(),
        "the run command did not install Claude Code into {} (npm installs from its cache: run \
         scripts/install-claude.sh once to fill it); output:\n{}",
        prefix.display(),
        server.log().join("\n")
    );
    // Once the start-up checks have run, /readyz has them (no GITHUB_TOKEN: a warning), and
    // nothing stops tasks.
    let c = crate::common::client();
    let mut ready = serde_json::Value::Null;
    for _ in 0..100 {
        let r = c
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            .unwrap();
        ready = serde_json::from_str(&r.text().await.unwrap()).unwrap_or_default();
        let checks = ready["checks"].as_array();
        if checks.is_some_and(|cs| cs.iter().any(|c| c["name"] == "github")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        ready["status"],
        "ready",
        "{ready:#}\n{}",
        server.log().join("\n")
    );
    let checks = ready["checks"].as_array().unwrap();
    let failing: Vec<_> = checks.iter().filter(|c| c["status"] == "fail").collect();
    assert!(failing.is_empty(), "{failing:#?}");
    let warnings = server.warnings();
    assert!(
        !warnings
            .iter()
            .any(|w| w["check"] == "claude_code" || w["check"] == "anthropic_api"),
        "{warnings:#?}"
    );

    // The second terminal: the quick start's CLI lines, as written.
    env.push(("AO_URL".into(), s(&server.base)));
    let define = &client_lines[0];
    assert!(define.starts_with("ao() {"), "{define}");
    // One shell, as in a terminal: a line's variables (the task's ID) reach the next lines.
    // A marker line on stdout before each line splits what each one printed.
    const MARK: &str = "@@quick-start-line@@";
    let script: String = std::iter::once(format!("set -e\n{define}\n"))
        .chain(
            client_lines[1..]
                .iter()
                .map(|l| format!("echo {MARK}\n{l}\n")),
        )
        .collect();
    let (ok, out) = bash(&script, &root, &env);
    assert!(ok, "the quick start's lines failed:\n{out}");
    let outputs: Vec<&str> = out.split(&format!("{MARK}\n")).skip(1).collect();
    assert_eq!(outputs.len(), client_lines.len() - 1, "{out}");
    let printed: Vec<(String, String)> = client_lines[1..]
        .iter()
        .cloned()
        .zip(outputs.iter().map(|o| o.to_string()))
        .collect();
    assert!(
        printed[0].0.starts_with("ID=$(ao tasks submit -o id ") && printed[0].1.is_empty(),
        "the quick start keeps the task's ID from `tasks submit -o id`: {printed:?}"
    );
    let shown: Vec<String> = printed
        .iter()
        .map(|(line, out)| format!("$ {}\n{out}", readme::typed(line)))
        .collect();
    readme::check_output(&shown.concat());
    let (_, events) = &printed[1];
    assert!(events.contains(ANSWER), "{events}");
    let (_, result) = &printed[2];
    for want in ["succeeded", "answered", ANSWER] {
        assert!(result.contains(want), "no {want} in:\n{result}");
    }
    assert!(
        !anthropic.agent_requests().is_empty(),
        "Claude Code never called the API"
    );
    assert!(!server.log().join("\n").contains(KEY), "the key was logged");
}
