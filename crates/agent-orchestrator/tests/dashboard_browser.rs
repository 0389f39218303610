//! The dashboard in a real browser: Debian's chromium, driven by playwright-core
//! (`tests/dashboard/browser.mjs`), against a whole orchestrator with an API token and a
//! script worker. The worker reports agent events and a result through the real callback
//! routes, and waits at a gate file between its two batches, so the browser sees a task
//! running, then opens the gate: every live update is observed, not timed.
//!
//! Needs `/usr/bin/chromium` and the pinned playwright-core: `scripts/install-browser-test.sh`
//! installs both (scripts/test.sh runs it); without them this test fails and says so.
//! Screenshots of each page, at desktop and phone width, go to
//! `<target dir>/dashboard-screenshots/`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{TestApp, script, serve_args};

const TOKEN: &str = "dashboard-browser-token-0123456789";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Reports two event batches and a result through the callback routes; waits for the gate
/// file `<gates>/<task id>` in between (at most a minute, so a failed run leaves no worker).
fn worker(gates: &Path) -> String {
    format!(
        r#"gate="{gates}/$AO_TASK_ID"
auth="Authorization: Bearer $AO_CALLBACK_TOKEN"
base="$AO_CALLBACK_URL/api/v1/tasks/$AO_TASK_ID/worker"
send() {{ curl -sf -X "$1" -H "$auth" -H 'content-type: application/json' --data-binary "$3" "$base/$2" >/dev/null; }}
echo "log line one"
send POST events '{{"first_seq":1,"events":[{{"type":"system","subtype":"init","session_id":"sess-1","model":"fake-model"}},{{"type":"assistant","message":{{"content":[{{"type":"text","text":"Looking at the files"}},{{"type":"tool_use","name":"Bash","input":{{"command":"ls -la"}}}}]}}}}]}}'
i=0
while [ ! -f "$gate" ] && [ "$i" -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
send POST events '{{"first_seq":3,"events":[{{"type":"user","message":{{"content":[{{"type":"tool_result","content":"file-a\nfile-b"}}]}}}},{{"type":"assistant","message":{{"content":[{{"type":"text","text":"All done"}}]}}}},{{"type":"result","subtype":"success","num_turns":2,"total_cost_usd":0.0123,"result":"All done"}}]}}'
send PUT result '{{"outcome":"answered","summary":"All done","cost_usd":0.0123,"input_tokens":1200,"output_tokens":80,"num_turns":2,"session_id":"sess-1"}}'
echo "finished"
exit 0"#,
        gates = gates.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() {
    let node_dir = repo_root().join("tests/dashboard");
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: run scripts/install-browser-test.sh (apt-get install chromium)"
    );
    assert!(
        node_dir
            .join("node_modules/playwright-core/package.json")
            .exists(),
        "playwright-core is missing in {}: run scripts/install-browser-test.sh",
        node_dir.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let gates = dir.path().join("gates");
    std::fs::create_dir(&gates).unwrap();
    let worker = script(dir.path(), "worker.sh", &worker(&gates));
    let args = serve_args(
        dir.path(),
        &worker,
        &["--api-tokens", TOKEN, "--max-concurrency", "1"],
    );
    let app = TestApp::spawn_with(dir, args).await;
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("dashboard-screenshots");
    let run = tokio::process::Command::new("node")
        .arg(node_dir.join("browser.mjs"))
        .env("AO_URL", &app.base)
        .env("AO_TOKEN", TOKEN)
        .env("AO_GATES", &gates)
        .env("AO_SHOTS", &shots)
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("the browser scenarios did not finish within 5 minutes")
        .expect("node could not be started (is Node.js installed?)");
    assert!(status.success(), "browser scenarios failed: {status}");
    eprintln!("dashboard screenshots: {}", shots.display());
    app.stop().await;
}
