//! Packages are built here, in memory, with the same layout dpkg-deb
//! writes: `debian-binary`, `control.tar.*`, `data.tar.*` in an ar archive.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::*;

const CONTROL: &str = "Package: hello\nVersion: 1.0-1\nArchitecture: amd64\n\
Depends: libc6 (>= 2.34), libfoo | libbar\nDescription: greets\n more text\n";

enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, u32, &'a [u8]),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    CharDevice(&'a str),
}

/// Names are stored byte for byte (`tar::Builder` would strip the `./`
/// dpkg writes and refuse the `..` the escape tests need).
fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(0);
        h.set_size(0);
        let (name, link, data): (&str, &str, &[u8]) = match *entry {
            E::Dir(path, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(mode);
                (path, "", b"")
            }
            E::File(path, mode, data) => {
                h.set_mode(mode);
                h.set_size(data.len() as u64);
                (path, "", data)
            }
            E::Symlink(path, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                (path, target, b"")
            }
            E::Hardlink(path, target) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                (path, target, b"")
            }
            E::CharDevice(path) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_mode(0o666);
                h.set_device_major(1).unwrap();
                h.set_device_minor(3).unwrap();
                (path, "", b"")
            }
        };
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn compress(suffix: &str, data: &[u8]) -> Vec<u8> {
    match suffix {
        "" => data.to_vec(),
        ".xz" => {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        ".zst" => zstd::encode_all(data, 3).unwrap(),
        ".gz" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        other => panic!("no test compressor for {other}"),
    }
}

fn write_deb(dir: &Path, members: Vec<(String, Vec<u8>)>) -> PathBuf {
    let path = dir.join("test.deb");
    let mut ar = ar::Builder::new(fs::File::create(&path).unwrap());
    for (name, data) in members {
        let header = ar::Header::new(name.into_bytes(), data.len() as u64);
        ar.append(&header, data.as_slice()).unwrap();
    }
    path
}

/// A package with `control` and `data` members compressed as `suffix`.
fn deb(dir: &Path, suffix: &str, data: &[E]) -> PathBuf {
    let control = tar_of(&[
        E::Dir("./", 0o755),
        E::File("./control", 0o644, CONTROL.as_bytes()),
    ]);
    write_deb(
        dir,
        vec![
            ("debian-binary".into(), b"2.0\n".to_vec()),
            (format!("control.tar{suffix}"), compress(suffix, &control)),
            (format!("data.tar{suffix}"), compress(suffix, &tar_of(data))),
        ],
    )
}

fn sample() -> Vec<E<'static>> {
    vec![
        E::Dir("./", 0o755),
        E::Dir("./usr", 0o755),
        E::Dir("./usr/bin", 0o755),
        E::File("./usr/bin/hello", 0o4755, b"#!/bin/sh\necho hi\n"),
        E::Symlink("./usr/bin/hi", "hello"),
        E::Hardlink("./usr/bin/hello2", "./usr/bin/hello"),
        E::Dir("./etc", 0o750),
        E::File("./etc/hello.conf", 0o600, b"greeting=hi\n"),
        E::CharDevice("./dev/null"),
    ]
}

#[test]
fn extracts_every_compression() {
    for suffix in [".xz", ".zst", ".gz", ""] {
        let tmp = tempfile::tempdir().unwrap();
        let deb = deb(tmp.path(), suffix, &sample());
        let root = tmp.path().join("root");
        let summary = extract(&deb, &root).unwrap();

        assert_eq!(
            summary,
            ExtractSummary {
                files: 2,
                dirs: 3,
                symlinks: 1,
                hardlinks: 1,
                bytes: 30,
                skipped: vec![PathBuf::from("./dev/null")],
            },
            "{suffix}"
        );
        let hello = root.join("usr/bin/hello");
        assert_eq!(fs::read(&hello).unwrap(), b"#!/bin/sh\necho hi\n");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&hello), 0o4755);
        assert_eq!(mode(&root.join("etc")), 0o750);
        assert_eq!(mode(&root.join("etc/hello.conf")), 0o600);
        assert_eq!(
            fs::read_link(root.join("usr/bin/hi")).unwrap(),
            Path::new("hello")
        );
        let ino = |p: &Path| fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&root.join("usr/bin/hello2")), ino(&hello));
        assert!(!root.join("dev/null").exists());

        let control = control(&deb).unwrap();
        assert_eq!(control.package, "hello");
        assert_eq!(control.version, "1.0-1");
        assert_eq!(control.architecture, "amd64");
        assert_eq!(control.depends, ["libc6", "libfoo"]);
        assert_eq!(control.field("Description"), Some("greets\nmore text"));
    }
}

#[test]
fn extracting_twice_replaces_files_and_never_writes_through_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::write(&outside, b"untouched").unwrap();
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("usr/bin/hello")).unwrap();

    let deb = deb(tmp.path(), ".xz", &sample());
    extract(&deb, &root).unwrap();
    extract(&deb, &root).unwrap();

    assert_eq!(fs::read(&outside).unwrap(), b"untouched");
    assert!(fs::symlink_metadata(root.join("usr/bin/hello"))
        .unwrap()
        .is_file());
}

#[test]
fn refuses_entries_escaping_the_destination() {
    let cases: [(&[E], &str, &str); 3] = [
        (
            &[E::File("./../escaped", 0o644, b"x")],
            "./../escaped",
            "path contains `..`",
        ),
        (
            &[E::File("/escaped", 0o644, b"x")],
            "/escaped",
            "path is absolute",
        ),
        (
            &[
                E::Symlink("./link", "/"),
                E::File("./link/escaped", 0o644, b"x"),
            ],
            "./link/escaped",
            "path goes through a symlink",
        ),
    ];
    for (entries, bad_entry, bad_reason) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let deb = deb(tmp.path(), ".zst", entries);
        let root = tmp.path().join("deep/root");
        match extract(&deb, &root).unwrap_err() {
            DebError::UnsafePath {
                deb: d,
                entry,
                reason,
            } => {
                assert_eq!(d, deb);
                assert_eq!(entry, Path::new(bad_entry));
                assert_eq!(reason, bad_reason);
            }
            other => panic!("expected UnsafePath, got {other:?}"),
        }
        assert!(!tmp.path().join("deep/escaped").exists());
        assert!(!Path::new("/escaped").exists());
    }
}

#[test]
fn unsafe_path_message_names_package_and_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let deb = deb(tmp.path(), "", &[E::File("../x", 0o644, b"x")]);
    let err = extract(&deb, &tmp.path().join("root")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: refusing archive entry `../x`: path contains `..`",
            deb.display()
        )
    );
}

#[test]
fn missing_data_member_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let deb = write_deb(
        tmp.path(),
        vec![("debian-binary".into(), b"2.0\n".to_vec())],
    );
    let err = extract(&deb, &tmp.path().join("root")).unwrap_err();
    assert!(
        matches!(
            &err,
            DebError::MissingMember {
                member: "data.tar",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("{} has no data.tar member", deb.display())
    );
    assert!(matches!(
        control(&deb).unwrap_err(),
        DebError::MissingMember {
            member: "control.tar",
            ..
        }
    ));
}

#[test]
fn unsupported_compression_names_the_member() {
    let tmp = tempfile::tempdir().unwrap();
    let deb = write_deb(tmp.path(), vec![("data.tar.bz2".into(), b"BZh9".to_vec())]);
    match extract(&deb, &tmp.path().join("root")).unwrap_err() {
        DebError::UnsupportedCompression { member, .. } => assert_eq!(member, "data.tar.bz2"),
        other => panic!("expected UnsupportedCompression, got {other:?}"),
    }
}

#[test]
fn corrupt_member_is_a_read_error_on_the_package() {
    let tmp = tempfile::tempdir().unwrap();
    let deb = write_deb(
        tmp.path(),
        vec![("data.tar.xz".into(), b"not xz at all".to_vec())],
    );
    match extract(&deb, &tmp.path().join("root")).unwrap_err() {
        DebError::Io { action, path, .. } => {
            assert_eq!(action, "reading");
            assert_eq!(path, deb);
        }
        other => panic!("expected Io, got {other:?}"),
    }
}

#[test]
fn not_an_ar_archive() {
    let tmp = tempfile::tempdir().unwrap();
    for content in [&b"PK\x03\x04 a zip file"[..], b""] {
        let path = tmp.path().join("bogus.deb");
        fs::write(&path, content).unwrap();
        let err = control(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is not a debian package (not an ar archive)",
                path.display()
            )
        );
    }
}

#[test]
fn control_tar_without_control_file() {
    let tmp = tempfile::tempdir().unwrap();
    let control_tar = tar_of(&[E::File("./md5sums", 0o644, b"")]);
    let deb = write_deb(tmp.path(), vec![("control.tar".into(), control_tar)]);
    assert!(matches!(
        control(&deb).unwrap_err(),
        DebError::MissingControlFile { .. }
    ));
}
