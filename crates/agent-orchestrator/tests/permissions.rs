//! The data directory is private: the store's files are 0600 in a 0700 folder (0711 with
//! `--worker-user`), every task file is 0600, and a worker running as another user can read
//! its own folder only: not the database, not the list of tasks, not a finished task's folder.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{TestApp, script};
use serde_json::{Value, json};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

async fn logs(app: &TestApp, id: &str) -> String {
    app.get(&format!("/api/v1/tasks/{id}/logs"))
        .await
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_store_and_task_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Left open by an earlier version: tightened on start.
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data.join("orchestrator.db"), b"").unwrap();
    std::fs::set_permissions(
        data.join("orchestrator.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let worker = script(dir.path(), "worker.sh", common::SCRIPT_WORKER);
    let args = common::serve_args(dir.path(), &worker, &[]);
    let app = TestApp::spawn_with(dir, args).await;
    let id = app.submit(json!({"prompt": "p"})).await;
    let t: Value = app.wait_terminal(&id).await;
    assert_eq!(t["status"], "succeeded", "{t:#}");
    assert_eq!(mode(&data), 0o700);
    for f in [
        "orchestrator.db",
        "orchestrator.db-wal",
        "orchestrator.db-shm",
    ] {
        if f == "orchestrator.db" || data.join(f).exists() {
            assert_eq!(mode(&data.join(f)), 0o600, "{f}");
        }
    }
    let workers = data.join("workers");
    let task_dir = workers.join(&id);
    assert_eq!(mode(&workers), 0o700);
    assert_eq!(mode(&task_dir), 0o700);
    for f in [
        "task.json",
        "output.log",
        "exit.json",
        "supervisor.pid",
        "supervisor.log",
    ] {
        assert_eq!(mode(&task_dir.join(f)), 0o600, "{f}");
    }
    app.stop().await;
}

/// What a worker can reach, as the lines it prints.
const PROBE: &str = r#"cat "$DATA_PATH/orchestrator.db" >/dev/null 2>&1 && echo db-readable || echo db-denied
ls "$DATA_PATH" >/dev/null 2>&1 && echo data-listable || echo data-unlistable
ls "$DATA_PATH/workers" >/dev/null 2>&1 && echo tasks-listable || echo tasks-unlistable
ls "$DATA_PATH/workers/$OTHER_TASK" >/dev/null 2>&1 && echo other-listable || echo other-denied
cat "$DATA_PATH/workers/$OTHER_TASK/task.json" >/dev/null 2>&1 && echo other-readable || echo other-unreadable
cat "$AO_TASK_FILE" >/dev/null && touch "$AO_WORKSPACE/x" && echo own-folder-ok"#;

#[tokio::test]
async fn a_worker_user_reads_its_own_folder_only() {
    if !nix::unistd::geteuid().is_root() {
        // Changing user needs root; CI runs as root, so this never skips there.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this test as root"
        );
        eprintln!("not root: skipping the --worker-user permissions test outside CI");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The unprivileged worker must be able to run its script.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    let worker = script(dir.path(), "probe.sh", PROBE);
    let args = common::serve_args(dir.path(), &worker, &["--worker-user", "nobody"]);
    let app = TestApp::spawn_with(dir, args).await;
    let env = |other: &str| json!({"DATA_PATH": data.to_string_lossy(), "OTHER_TASK": other});
    let first = app
        .submit(json!({"prompt": "first", "env": env("none")}))
        .await;
    let t = app.wait_terminal(&first).await;
    assert_eq!(
        t["status"],
        "succeeded",
        "{t:#}\n{}",
        logs(&app, &first).await
    );
    assert_eq!(mode(&data), 0o711);
    let second = app
        .submit(json!({"prompt": "second", "env": env(&first)}))
        .await;
    let t = app.wait_terminal(&second).await;
    let out = logs(&app, &second).await;
    assert_eq!(t["status"], "succeeded", "{t:#}\n{out}");
    let seen: Vec<&str> = out.lines().collect();
    assert_eq!(
        seen,
        [
            "db-denied",
            "data-unlistable",
            "tasks-unlistable",
            "other-denied",
            "other-unreadable",
            "own-folder-ok"
        ],
        "{out}"
    );
    app.stop().await;
}
