//! The local runtime's own invariants: a poisoned lock does not take it down, output wakes
//! its follower without polling, and task folders and files are private.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use ao_store_sqlite::SqliteStore;

use super::*;

async fn runtime(dir: &Path, run_as: Option<(u32, u32)>) -> LocalRuntime {
    let store = SqliteStore::open(&dir.join("db.sqlite")).await.unwrap();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let cfg = LocalConfig {
        root: dir.join("workers"),
        worker_command: vec!["/bin/true".into()],
        supervisor: "/bin/false".into(),
        pass_env: Vec::new(),
        extra_env: Vec::new(),
        run_as,
    };
    LocalRuntime::new(cfg, Arc::new(store), tx).unwrap()
}

fn some_task() -> Task {
    serde_json::from_value(serde_json::json!({
        "id": TaskId::new(),
        "status": "queued",
        "reason": "submitted",
        "prompt": "p",
        "timeout_seconds": 60,
        "created_at": "2026-01-01T00:00:00Z",
    }))
    .unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[tokio::test]
async fn a_poisoned_lock_does_not_take_the_runtime_down() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path(), None).await;
    let workers = rt.workers.clone();
    let _ = std::thread::spawn(move || {
        let _held = workers.lock().unwrap();
        panic!("poisoning the workers lock on purpose");
    })
    .join();
    assert!(rt.workers.is_poisoned());
    let id = TaskId::new();
    assert_eq!(rt.pid_of(id), None);
    rt.stop(id, Duration::ZERO).await.unwrap();
    rt.cleanup(id).await.unwrap();
}

#[tokio::test]
async fn a_write_in_a_watched_folder_wakes_its_follower() {
    let dir = tempfile::tempdir().unwrap();
    let watcher = watch::DirWatcher::start().unwrap();
    let sub = watcher.subscribe(dir.path()).unwrap();
    // Written before anyone waits: the wake-up is kept, not lost.
    std::fs::write(dir.path().join("output.log"), b"line\n").unwrap();
    // No timer can resolve this: only the inotify event does.
    sub.changed().await;
    let other = tempfile::tempdir().unwrap();
    let sub2 = watcher.subscribe(other.path()).unwrap();
    std::fs::write(other.path().join("output.log"), b"x\n").unwrap();
    sub2.changed().await;
    drop(sub);
    assert_eq!(
        lock(&watcher.subscribers).len(),
        1,
        "a dropped watch is forgotten"
    );
}

#[tokio::test]
async fn task_folders_and_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("workers");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let rt = runtime(dir.path(), None).await;
    assert_eq!(mode(&root), 0o700, "an open workers folder is tightened");
    let task = some_task();
    let tdir = rt.task_dir(task.id);
    std::fs::create_dir_all(&tdir).unwrap();
    std::fs::set_permissions(&tdir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(tdir.join("task.json"), b"{}").unwrap();
    std::fs::set_permissions(
        tdir.join("task.json"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    process::prepare_dir(&tdir, &task, None).unwrap();
    for sub in ["", "workspace", "home", "tmp"] {
        assert_eq!(mode(&tdir.join(sub)), 0o700, "{sub}");
    }
    assert_eq!(mode(&tdir.join("task.json")), 0o600);
    process::write_private(&tdir.join("exit.json"), b"{}").unwrap();
    assert_eq!(mode(&tdir.join("exit.json")), 0o600);
}

#[tokio::test]
async fn with_a_worker_user_the_root_is_traversable_only() {
    let dir = tempfile::tempdir().unwrap();
    let _rt = runtime(dir.path(), Some((65534, 65534))).await;
    assert_eq!(mode(&dir.path().join("workers")), 0o711);
}
