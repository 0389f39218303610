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

/// Changing user needs root. CI runs as root; elsewhere these tests fail saying so.
fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test runs workers as `nobody` (--worker-user), which needs root: run it as root (CI does)"
    );
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
    require_root();
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

/// Every folder and file under `dir`, except the subtree `skip`, with `dir` itself.
fn everything_under(dir: &Path, skip: &Path, out: &mut Vec<std::path::PathBuf>) {
    if dir == skip {
        return;
    }
    out.push(dir.to_path_buf());
    // A folder may go while we look (a finished worker's scratch space).
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            everything_under(&p, skip, out);
        } else {
            out.push(p);
        }
    }
}

/// Runs as `user`: reads each file or lists each folder given, and prints the ones it could.
fn readable_as(user: &ao_runtime_local::WorkerUser, paths: &[std::path::PathBuf]) -> Vec<String> {
    use std::os::unix::process::CommandExt;
    const READ_EACH: &str = r#"for p; do
  if [ -d "$p" ]; then ls -a "$p" >/dev/null 2>&1 && echo "$p"
  else cat "$p" >/dev/null 2>&1 && echo "$p"; fi
done
exit 0"#;
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(READ_EACH)
        .arg("probe")
        .args(paths)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .current_dir("/")
        .uid(user.uid)
        .gid(user.gid)
        .output()
        .expect("run a probe as the worker user");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// As the worker user (a process of its own, not the orchestrator's worker), nothing in the
/// data dir can be read or listed, save the folder of the task running as it: not the
/// database and its journal, not an API tokens file kept there, not `workers/`, not a finished
/// task's spec, output, supervisor files or checkout. (Callback tokens are stored only as
/// hashes, in the database.)
#[tokio::test]
async fn nothing_else_in_the_data_dir_is_readable_by_the_worker_user() {
    require_root();
    let nobody = ao_runtime_local::resolve_worker_user("nobody").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    // An API tokens file the operator keeps in the data dir, written with a usual umask.
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("api-tokens"), "operator-token-0123456789\n").unwrap();
    std::fs::set_permissions(
        data.join("api-tokens"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let worker = script(
        dir.path(),
        "worker.sh",
        &format!(
            "echo secret > \"$AO_WORKSPACE/file\"; mkdir -p \"$HOME/.cache\"\n{}",
            common::SCRIPT_WORKER
        ),
    );
    let args = common::serve_args(dir.path(), &worker, &["--worker-user", "nobody"]);
    let app = TestApp::spawn_with(dir, args).await;
    let done = app
        .submit(json!({"prompt": "finished", "env": {"GREETING": "hi"}}))
        .await;
    let t = app.wait_terminal(&done).await;
    assert_eq!(
        t["status"],
        "succeeded",
        "{t:#}\n{}",
        logs(&app, &done).await
    );
    let running = app
        .submit(json!({"prompt": "running", "env": {"SLEEP": "30"}}))
        .await;
    app.wait_for(&running, 10, |s| s == "running").await;
    let own = data.join("workers").join(&running);
    // The task running as the user may read its own folder: the probe can read.
    let own_files = [own.join("task.json"), own.join("workspace/file")];
    let seen = readable_as(&nobody, &own_files);
    assert_eq!(
        seen.len(),
        2,
        "the probe cannot even read its own task: {seen:?}"
    );

    let mut paths = Vec::new();
    everything_under(&data, &own, &mut paths);
    for want in ["orchestrator.db", "workers", "api-tokens"] {
        assert!(
            paths.contains(&data.join(want)),
            "{want} is missing: {paths:#?}"
        );
    }
    let finished = data.join("workers").join(&done);
    for f in [
        "task.json",
        "output.log",
        "exit.json",
        "supervisor.log",
        "workspace/file",
    ] {
        assert!(
            paths.contains(&finished.join(f)),
            "{f} is missing: {paths:#?}"
        );
    }
    let leaked = readable_as(&nobody, &paths);
    assert!(leaked.is_empty(), "the worker user can read: {leaked:#?}");
    app.cancel(&running).await;
    app.wait_terminal(&running).await;
    app.stop().await;
}
