//! Local git repositories for tests: a bare "remote" to clone from and push to.
//!
//! Uses the `git` CLI, isolated from the machine's configuration: `GIT_CONFIG_NOSYSTEM=1`, a
//! private `HOME`, and a fixed identity from the environment (tests run as root here).

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// A bare repository with an initial commit on `main` (a `README.md`). Deleted when dropped.
pub struct BareRepo {
    dir: TempDir,
}

impl BareRepo {
    /// Creates the bare repository and pushes the initial commit to `main`.
    ///
    /// # Panics
    /// If `git` is missing or fails.
    pub fn create() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ao-bare-")
            .tempdir()
            .expect("tempdir");
        let this = BareRepo { dir };
        std::fs::create_dir_all(this.home()).expect("home");
        let bare = this.path();
        git(
            &this.home(),
            None,
            &["init", "--bare", "--initial-branch=main", path_str(&bare)],
        );
        let seed = this.dir.path().join("seed");
        git(
            &this.home(),
            None,
            &["init", "--initial-branch=main", path_str(&seed)],
        );
        std::fs::write(seed.join("README.md"), "# test repository\n").expect("write README");
        git(&this.home(), Some(&seed), &["add", "-A"]);
        git(
            &this.home(),
            Some(&seed),
            &["commit", "-q", "-m", "initial commit"],
        );
        git(
            &this.home(),
            Some(&seed),
            &["push", "-q", path_str(&bare), "main"],
        );
        this
    }

    /// Path of the bare repository (usable as a clone URL).
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("remote.git")
    }

    /// The clone URL (the path, as a string).
    pub fn url(&self) -> String {
        path_str(&self.path()).to_owned()
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Makes every later push fail (a `pre-receive` hook that exits 1).
    pub fn reject_pushes(&self) {
        use std::os::unix::fs::PermissionsExt;
        let hook = self.path().join("hooks/pre-receive");
        std::fs::write(
            &hook,
            "#!/bin/sh\necho 'push rejected by test hook' >&2\nexit 1\n",
        )
        .expect("write hook");
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))
            .expect("chmod hook");
    }

    /// Branch names (without `refs/heads/`).
    pub fn branches(&self) -> Vec<String> {
        let out = git(
            &self.home(),
            Some(&self.path()),
            &["for-each-ref", "--format=%(refname:short)", "refs/heads"],
        );
        out.lines().map(str::to_owned).collect()
    }

    /// The content of `file` on `branch`, or `None` if the branch or file does not exist.
    pub fn read_file(&self, branch: &str, file: &str) -> Option<String> {
        let out = git_cmd(&self.home(), Some(&self.path()))
            .args(["show", &format!("refs/heads/{branch}:{file}")])
            .output()
            .expect("run git");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Files (paths) on `branch`.
    pub fn files(&self, branch: &str) -> Vec<String> {
        let out = git(
            &self.home(),
            Some(&self.path()),
            &[
                "ls-tree",
                "-r",
                "--name-only",
                &format!("refs/heads/{branch}"),
            ],
        );
        out.lines().map(str::to_owned).collect()
    }

    /// The commit `branch` points to.
    pub fn rev(&self, branch: &str) -> Option<String> {
        let out = git_cmd(&self.home(), Some(&self.path()))
            .args([
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/heads/{branch}"),
            ])
            .output()
            .expect("run git");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// `git log -1 --format=<format> <branch>`.
    pub fn log1(&self, branch: &str, format: &str) -> String {
        git(
            &self.home(),
            Some(&self.path()),
            &[
                "log",
                "-1",
                &format!("--format={format}"),
                &format!("refs/heads/{branch}"),
            ],
        )
    }

    /// The bare repository's `config` file.
    pub fn config_text(&self) -> String {
        std::fs::read_to_string(self.path().join("config")).unwrap_or_default()
    }
}

/// Environment that isolates a `git` invocation from the machine (and gives it an identity).
pub fn isolated_git_env(home: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("GIT_CONFIG_NOSYSTEM", "1".into()),
        ("HOME", path_str(home).to_owned()),
        ("GIT_TERMINAL_PROMPT", "0".into()),
        ("GIT_AUTHOR_NAME", "Test Seeder".into()),
        ("GIT_AUTHOR_EMAIL", "seed@localhost".into()),
        ("GIT_COMMITTER_NAME", "Test Seeder".into()),
        ("GIT_COMMITTER_EMAIL", "seed@localhost".into()),
    ]
}

fn git_cmd(home: &Path, cwd: Option<&Path>) -> Command {
    let mut c = Command::new("git");
    c.envs(isolated_git_env(home))
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE");
    if let Some(cwd) = cwd {
        c.current_dir(cwd);
    }
    c
}

fn git(home: &Path, cwd: Option<&Path>, args: &[&str]) -> String {
    let out = git_cmd(home, cwd).args(args).output().expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}
