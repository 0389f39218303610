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

/// A worker owns its task folder while it runs and may leave links in it; preparing the folder
/// again (a relaunch) and reading its files never goes through them.
#[tokio::test]
async fn links_a_worker_left_in_its_folder_are_not_followed() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o755)).unwrap();
    let precious = dir.path().join("precious");
    std::fs::write(&precious, r#"{"code":0,"signal":null}"#).unwrap();
    std::fs::set_permissions(&precious, std::fs::Permissions::from_mode(0o644)).unwrap();
    let rt = runtime(dir.path(), None).await;
    let task = some_task();
    let tdir = rt.task_dir(task.id);
    std::fs::create_dir_all(&tdir).unwrap();
    symlink(&outside, tdir.join("workspace")).unwrap();
    for f in ["task.json", "exit.json", "supervisor.pid", "supervisor.log"] {
        symlink(&precious, tdir.join(f)).unwrap();
    }
    nix::unistd::mkfifo(&tdir.join("output.log"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    // Reading: a link or a FIFO is not a file of ours (and does not hang us).
    assert_eq!(process::read_exit(&tdir), None);
    assert_eq!(process::live_supervisor(&tdir), None);
    assert!(nofollow::open_read(&tdir.join("output.log")).is_err());
    assert!(nofollow::append_private(&tdir.join("supervisor.log")).is_err());
    // Preparing: the links are replaced, their targets untouched (chmod, chown or write).
    let me = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    process::prepare_dir(&tdir, &task, Some(me)).unwrap();
    assert!(
        std::fs::symlink_metadata(tdir.join("workspace"))
            .unwrap()
            .is_dir()
    );
    assert!(
        std::fs::symlink_metadata(tdir.join("task.json"))
            .unwrap()
            .is_file()
    );
    assert_eq!(mode(&outside), 0o755);
    assert_eq!(mode(&precious), 0o644);
    assert_eq!(
        std::fs::read_to_string(&precious).unwrap(),
        r#"{"code":0,"signal":null}"#
    );
    assert_eq!(mode(&tdir.join("workspace")), 0o700);
    process::write_private(&tdir.join("supervisor.pid"), b"1").unwrap();
    assert!(
        std::fs::symlink_metadata(tdir.join("supervisor.pid"))
            .unwrap()
            .is_file()
    );
    assert_eq!(mode(&precious), 0o644);
}
