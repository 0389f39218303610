//! "Images" for the process node: a pod's image reference names a local folder whose `bin/`
//! becomes the container's PATH. The folder is world-readable, because pods under Pod Security
//! "restricted" run as a non-root user.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rand::Rng;

use crate::TestEnv;

/// Every image made by [`TestEnv::image`] in this process (image ref -> folder).
static IMAGES: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        })
}

fn world_readable(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Puts `src` at `dst`: a hard link when `src` is already world-executable (no copy of a large
/// binary), else a copy made mode 0755.
fn place(src: &Path, dst: &Path) -> std::io::Result<()> {
    let mode = std::fs::metadata(src)?.permissions().mode();
    if mode & 0o005 == 0o005 && std::fs::hard_link(src, dst).is_ok() {
        return Ok(());
    }
    std::fs::copy(src, dst)?;
    world_readable(dst, 0o755)
}

impl TestEnv {
    /// Every image made by [`TestEnv::image`] in this process: image ref -> folder.
    pub fn images(&self) -> BTreeMap<String, PathBuf> {
        IMAGES.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Lays out a new image folder `<dir>/images/<name>-<random6>` with `bin/<file>` for each
    /// `(file, source)` of `bins`, world-readable; returns `(image ref, folder)`. The image ref
    /// is `ao-testenv.local/<name>:<random6>`. [`TestEnv::start_node`] knows every image made
    /// in this process.
    pub fn image(&self, name: &str, bins: &[(&str, &Path)]) -> (String, PathBuf) {
        assert!(
            is_name(name),
            "ao-kube-testenv: image name {name:?} must be lowercase letters, digits, '-', '_' or '.'"
        );
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        let tag: String = (0..6)
            .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
            .collect();
        let images = self.dir.join("images");
        let dir = images.join(format!("{name}-{tag}"));
        let bin = dir.join("bin");
        let make = || -> std::io::Result<()> {
            std::fs::create_dir_all(&bin)?;
            for d in [&images, &dir, &bin] {
                world_readable(d, 0o755)?;
            }
            for (file, src) in bins {
                assert!(
                    !file.is_empty() && !file.contains('/'),
                    "ao-kube-testenv: image file name {file:?} must be a plain file name"
                );
                place(src, &bin.join(file)).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{} -> bin/{file}: {e}", src.display()))
                })?;
            }
            Ok(())
        };
        make().unwrap_or_else(|e| {
            panic!(
                "ao-kube-testenv: laying out image {name} in {} failed: {e}",
                dir.display()
            )
        });
        let reference = format!("ao-testenv.local/{name}:{tag}");
        IMAGES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(reference.clone(), dir.clone());
        (reference, dir)
    }
}
