//! The database files are private to the orchestrator's user (0600): they hold every task's
//! prompt, env and results, and local workers may run on the same machine. The main file is
//! created 0600 before SQLite opens it, and SQLite gives its `-wal` and `-shm` files the main
//! file's mode. Files left wider by an earlier version are tightened, with a log line.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tracing::info;

/// Create `db` (0600) if it does not exist, and bring it and its companions to 0600.
pub(crate) fn make_private(db: &Path) -> std::io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(db)?;
    for p in [
        db.to_path_buf(),
        companion(db, "-wal"),
        companion(db, "-shm"),
    ] {
        let had = match fs::metadata(&p) {
            Ok(m) => m.permissions().mode() & 0o7777,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if had != 0o600 {
            // Whatever the umask was when it was made.
            fs::set_permissions(&p, fs::Permissions::from_mode(0o600))?;
            info!(file = %p.display(), from = format!("{had:o}"), to = "600", "made the database file private");
        }
    }
    Ok(())
}

fn companion(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[tokio::test]
    async fn the_database_and_its_wal_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("orchestrator.db");
        let store = crate::SqliteStore::open(&db).await.unwrap();
        ao_core::store::TaskStore::ping(&store).await.unwrap();
        for p in [db.clone(), companion(&db, "-wal"), companion(&db, "-shm")] {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }

    #[tokio::test]
    async fn files_left_world_readable_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("orchestrator.db");
        drop(crate::SqliteStore::open(&db).await.unwrap());
        for p in [db.clone(), companion(&db, "-wal"), companion(&db, "-shm")] {
            if p.exists() {
                fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
            }
        }
        let _store = crate::SqliteStore::open(&db).await.unwrap();
        for p in [db.clone(), companion(&db, "-wal"), companion(&db, "-shm")] {
            if p.exists() {
                assert_eq!(mode(&p), 0o600, "{}", p.display());
            }
        }
        assert_eq!(mode(&db), 0o600);
    }
}
