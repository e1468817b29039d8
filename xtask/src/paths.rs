//! Where things are: the project root and the builder's folders under
//! `target/`.

use std::path::{Path, PathBuf};

/// The workspace root, found from this crate's manifest directory so the
/// builder works from any current directory.
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Cargo's target directory (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                project_root().join(dir)
            }
        }
        None => project_root().join("target"),
    }
}

/// Everything the image builder caches or produces lives under here.
pub fn slipway_dir() -> PathBuf {
    target_dir().join("slipway")
}

/// Downloaded `.deb` files, named `<package>_<version>.deb`.
pub fn deb_cache() -> PathBuf {
    slipway_dir().join("debs")
}

/// Unpacked packages, one folder per package and version.
pub fn unpack_cache() -> PathBuf {
    slipway_dir().join("unpacked")
}

/// The default output folder of a board's image.
pub fn image_dir(board: &str) -> PathBuf {
    slipway_dir().join("images").join(board)
}

pub fn boards_dir() -> PathBuf {
    project_root().join("board")
}
