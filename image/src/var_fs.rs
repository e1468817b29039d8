//! The empty ext4 filesystem of the `var` partition, made at build time.
//!
//! Written by e2fsprogs' `mke2fs`, run on the disk image file: no maintained
//! Rust crate writes ext4 (the `ext4` crates on crates.io only read it), and
//! mke2fs is the reference writer every ext4 user already trusts. What makes
//! the result reproducible:
//!
//! - a private `mke2fs.conf` (`MKE2FS_CONFIG`), so the host's defaults
//!   (which change between e2fsprogs releases) do not pick our features;
//! - the filesystem UUID and the directory hash seed derived from the image
//!   identity (`-U`, `-E hash_seed=`);
//! - `E2FSPROGS_FAKE_TIME` for every timestamp mke2fs writes;
//! - inode tables and journal zeroed now (`lazy_*_init=0`), so nothing is
//!   left for the kernel's background initialisation to write at first boot.
//!
//! The filesystem starts as small as the partition and is grown online by
//! the init at first boot (`EXT4_IOC_RESIZE_FS`).

use std::path::Path;
use std::process::Command;

use uuid::Uuid;

/// Features of Debian 12's `ext4` profile, fixed here. `resize_inode`
/// reserves group descriptor blocks for growth to 1024 times the made size;
/// beyond that the kernel's online resize switches to `meta_bg` by itself.
/// 4 KiB blocks and 256-byte inodes (timestamps past 2038) even though the
/// partition is small at build time: the "small" profile's 1 KiB blocks
/// would stay forever after growth.
const MKE2FS_CONF: &str = "\
[defaults]
\tbase_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
\tdefault_mntopts = acl,user_xattr
\tenable_periodic_fsck = 0
\tblocksize = 4096
\tinode_size = 256
\tinode_ratio = 16384

[fs_types]
\text4 = {
\t\tfeatures = has_journal,extent,huge_file,flex_bg,metadata_csum,64bit,dir_nlink,extra_isize
\t}
";

/// The filesystem label, as `blkid` shows it.
pub const LABEL: &str = "var";

#[derive(Debug, thiserror::Error)]
pub enum VarFsError {
    #[error("mke2fs not found: install e2fsprogs (`apt-get install e2fsprogs`)")]
    MissingTool,
    #[error("running mke2fs: {0}")]
    Io(#[from] std::io::Error),
    #[error("mke2fs failed on {disk} at offset {offset}: {stderr}")]
    Failed {
        disk: String,
        offset: u64,
        stderr: String,
    },
}

/// Writes an empty ext4 filesystem of `size` bytes at byte `offset` of the
/// image file `disk`, leaving the rest of the file untouched.
pub fn format(
    disk: &Path,
    offset: u64,
    size: u64,
    uuid: &Uuid,
    epoch: u64,
) -> Result<(), VarFsError> {
    let conf = tempfile_in_target(disk)?;
    std::fs::write(&conf, MKE2FS_CONF)?;
    let extended = format!(
        "offset={offset},hash_seed={uuid},root_owner=0:0,\
         lazy_itable_init=0,lazy_journal_init=0,nodiscard"
    );
    let result = Command::new(mke2fs())
        .env("MKE2FS_CONFIG", &conf)
        .env("E2FSPROGS_FAKE_TIME", epoch.to_string())
        // Refuse to guess; never ask on a terminal.
        .args(["-q", "-F", "-t", "ext4", "-L", LABEL, "-m", "0"])
        .arg("-U")
        .arg(uuid.to_string())
        .arg("-E")
        .arg(&extended)
        .arg(disk)
        // mke2fs takes the size in KiB with a `k` suffix.
        .arg(format!("{}k", size / 1024))
        .output();
    let _ = std::fs::remove_file(&conf);
    let output = match result {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(VarFsError::MissingTool),
        Err(e) => return Err(e.into()),
    };
    if !output.status.success() {
        return Err(VarFsError::Failed {
            disk: disk.display().to_string(),
            offset,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// What the `mke2fs` that [`format`] runs says with `-V`: its version and
/// its ext2fs library's, on which the filesystem's bytes depend.
pub fn mke2fs_version() -> Result<String, VarFsError> {
    let output = match Command::new(mke2fs()).arg("-V").output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(VarFsError::MissingTool),
        Err(e) => return Err(e.into()),
    };
    // It prints to stderr, and exits 0.
    let text = String::from_utf8_lossy(&output.stderr).trim().to_string();
    if !output.status.success() || text.is_empty() {
        return Err(VarFsError::Io(std::io::Error::other(format!(
            "`{} -V` failed: {text}",
            mke2fs().display()
        ))));
    }
    Ok(text)
}

/// mke2fs lives in `/sbin`, which is not on every user's `PATH`.
fn mke2fs() -> std::path::PathBuf {
    for dir in ["/usr/sbin", "/sbin"] {
        let candidate = Path::new(dir).join("mke2fs");
        if candidate.exists() {
            return candidate;
        }
    }
    "mke2fs".into()
}

/// The config file goes next to the disk image, which is in our build
/// directory: no shared `/tmp` name to race on.
fn tempfile_in_target(disk: &Path) -> std::io::Result<std::path::PathBuf> {
    let mut name = disk.file_name().unwrap_or_default().to_os_string();
    name.push(".mke2fs.conf");
    Ok(disk.with_file_name(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom};

    const MIB: u64 = 1024 * 1024;

    fn superblock(path: &Path, offset: u64) -> Vec<u8> {
        let mut f = std::fs::File::open(path).unwrap();
        f.seek(SeekFrom::Start(offset + 1024)).unwrap();
        let mut sb = vec![0; 1024];
        f.read_exact(&mut sb).unwrap();
        sb
    }

    #[test]
    fn writes_ext4_at_the_offset_and_nothing_else() {
        if !Path::new("/usr/sbin/mke2fs").exists() && !Path::new("/sbin/mke2fs").exists() {
            // The CI installs e2fsprogs; a developer machine without it gets
            // the same clear error from the build.
            assert!(std::env::var_os("CI").is_none(), "mke2fs missing in CI");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let uuid = Uuid::parse_str("0b7c2d5e-1f3a-4c6b-9d8e-7f6a5b4c3d2e").unwrap();
        let mut sums = Vec::new();
        for name in ["a.raw", "b.raw"] {
            let disk = dir.path().join(name);
            let marker = vec![0xa5u8; 4096];
            std::fs::write(&disk, &marker).unwrap();
            let f = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
            f.set_len(2 * MIB + 32 * MIB + MIB).unwrap();
            drop(f);
            format(&disk, 2 * MIB, 32 * MIB, &uuid, 1_700_000_000).unwrap();
            let bytes = std::fs::read(&disk).unwrap();
            // Before the partition: untouched. After it: still zero.
            assert_eq!(&bytes[..4096], &marker[..]);
            assert!(bytes[4096..2 * MIB as usize].iter().all(|b| *b == 0));
            assert!(bytes[34 * MIB as usize..].iter().all(|b| *b == 0));
            let sb = superblock(&disk, 2 * MIB);
            assert_eq!(&sb[56..58], &[0x53, 0xef], "ext4 magic");
            let log_block = u32::from_le_bytes(sb[24..28].try_into().unwrap());
            assert_eq!(1024 << log_block, 4096);
            let blocks = u32::from_le_bytes(sb[4..8].try_into().unwrap());
            assert_eq!(u64::from(blocks) * 4096, 32 * MIB);
            assert_eq!(&sb[104..120], uuid.as_bytes());
            assert_eq!(&sb[120..123], b"var");
            sums.push(bytes);
        }
        assert!(sums[0] == sums[1], "two runs differ");
        assert!(!dir.path().join("a.raw.mke2fs.conf").exists());
    }
}
