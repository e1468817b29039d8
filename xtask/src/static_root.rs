//! `board/common/root/`: static files copied into every board's root tree
//! after the generated ones (unit files, `/etc/nsswitch.conf`, …).
//!
//! Git keeps only the executable bit, so modes are normalised: folders and
//! executable files 0755, other files 0644; symlinks are kept as written.
//! Nothing of the checkout (owner, times, umask) reaches the image.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use slipway_image::tree::Node;

use crate::util::sha256_bytes;

/// The folder of files every board's root gets.
pub fn common_root_dir(boards_dir: &Path) -> PathBuf {
    boards_dir.join("common").join("root")
}

/// Reads a folder into root-tree entries (paths relative, sorted). A
/// missing folder gives no entries.
pub fn read(dir: &Path) -> Result<BTreeMap<String, Node>> {
    let mut out = BTreeMap::new();
    if dir.is_dir() {
        walk(dir, "", &mut out)?;
    }
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, Node>) -> Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("listing {}", dir.display()))?;
    names.sort();
    for name in names {
        let src = dir.join(&name);
        let path = format!("{prefix}{name}");
        let md = std::fs::symlink_metadata(&src)?;
        if md.file_type().is_symlink() {
            let target = std::fs::read_link(&src)?.to_string_lossy().into_owned();
            out.insert(path, Node::Symlink { target });
        } else if md.is_dir() {
            out.insert(path.clone(), Node::Dir { mode: 0o755 });
            walk(&src, &format!("{path}/"), out)?;
        } else if md.is_file() {
            let mode = if md.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            let data = std::fs::read(&src).with_context(|| format!("reading {}", src.display()))?;
            out.insert(path, Node::File { mode, data });
        } else {
            bail!(
                "{}: only files, folders and symlinks can go into the root",
                src.display()
            );
        }
    }
    Ok(())
}

/// A digest of entries, for the build ID: paths, kinds, modes, contents.
pub fn digest(entries: &BTreeMap<String, Node>) -> String {
    let mut buf = Vec::new();
    for (path, node) in entries {
        buf.extend_from_slice(path.as_bytes());
        buf.push(0);
        match node {
            Node::Dir { mode } => buf.extend_from_slice(format!("d{mode:o}").as_bytes()),
            Node::File { mode, data } => {
                buf.extend_from_slice(format!("f{mode:o}:{}", sha256_bytes(data)).as_bytes())
            }
            Node::Symlink { target } => buf.extend_from_slice(format!("l{target}").as_bytes()),
            Node::CharDevice { mode, major, minor } => {
                buf.extend_from_slice(format!("c{mode:o}:{major}:{minor}").as_bytes())
            }
        }
        buf.push(0);
    }
    sha256_bytes(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_normalised_and_links_kept() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("usr/lib/x.wants")).unwrap();
        std::fs::write(d.join("usr/lib/a"), "a").unwrap();
        std::fs::set_permissions(d.join("usr/lib/a"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        std::fs::write(d.join("usr/lib/run"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            d.join("usr/lib/run"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        std::os::unix::fs::symlink("../a", d.join("usr/lib/x.wants/a")).unwrap();
        let e = read(d).unwrap();
        let paths: Vec<&str> = e.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "usr",
                "usr/lib",
                "usr/lib/a",
                "usr/lib/run",
                "usr/lib/x.wants",
                "usr/lib/x.wants/a"
            ]
        );
        assert_eq!(
            e["usr/lib/a"],
            Node::File {
                mode: 0o644,
                data: b"a".to_vec()
            }
        );
        assert!(matches!(e["usr/lib/run"], Node::File { mode: 0o755, .. }));
        assert_eq!(
            e["usr/lib/x.wants/a"],
            Node::Symlink {
                target: "../a".into()
            }
        );
        let before = digest(&e);
        std::fs::write(d.join("usr/lib/a"), "b").unwrap();
        assert_ne!(digest(&read(d).unwrap()), before);
        assert!(read(&d.join("missing")).unwrap().is_empty());
    }

    #[test]
    fn the_common_root_holds_the_ssh_service() {
        let e = read(&common_root_dir(&crate::paths::boards_dir())).unwrap();
        let unit = match &e["usr/lib/systemd/system/sshd.service"] {
            Node::File { data, .. } => String::from_utf8(data.clone()).unwrap(),
            other => panic!("{other:?}"),
        };
        assert!(unit.contains("ExecStart=/usr/sbin/dropbear "), "{unit}");
        assert_eq!(
            e["usr/lib/systemd/system/multi-user.target.wants/sshd.service"],
            Node::Symlink {
                target: "../sshd.service".into()
            }
        );
        assert!(e.contains_key("usr/lib/systemd/system/multi-user.target"));
        assert!(e.contains_key("etc/nsswitch.conf"));
        assert!(e.contains_key("etc/shells"));
    }
}
