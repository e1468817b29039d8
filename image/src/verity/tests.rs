use super::*;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

fn params() -> VerityParams {
    VerityParams {
        salt: std::array::from_fn(|i| i as u8 * 7 + 1),
        uuid: Uuid::parse_str("12345678-1234-4678-9abc-def012345678").unwrap(),
    }
}

/// Deterministic, non-repeating data: every block differs from the others.
fn data(blocks: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut v = Vec::with_capacity(blocks * BLOCK_BYTES);
    for _ in 0..blocks * BLOCK_BYTES / 8 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v
}

/// Cheap data for large block counts: zero blocks numbered in their first bytes.
fn numbered(blocks: usize) -> Vec<u8> {
    let mut v = vec![0u8; blocks * BLOCK_BYTES];
    for (i, b) in v.chunks_exact_mut(BLOCK_BYTES).enumerate() {
        b[..8].copy_from_slice(&(i as u64).to_le_bytes());
    }
    v
}

fn h(salt: &[u8], block: &[u8]) -> [u8; 32] {
    let mut s = Sha256::new();
    s.update(salt);
    s.update(block);
    s.finalize().into()
}

/// A straightforward single-threaded tree, level by level, to check the
/// optimised one against.
fn reference(data: &[u8], p: &VerityParams) -> (Vec<u8>, [u8; 32]) {
    let mut levels: Vec<Vec<u8>> = Vec::new();
    let mut below = data.to_vec();
    while below.len() > BLOCK_BYTES {
        let mut level: Vec<u8> = below
            .chunks(BLOCK_BYTES)
            .flat_map(|b| h(&p.salt, b))
            .collect();
        level.resize(level.len().div_ceil(BLOCK_BYTES) * BLOCK_BYTES, 0);
        levels.push(level.clone());
        below = level;
    }
    let root = h(&p.salt, &below);
    let mut image = vec![0u8; BLOCK_BYTES];
    for level in levels.iter().rev() {
        image.extend_from_slice(level);
    }
    (image, root)
}

#[test]
fn superblock_fields() {
    let p = params();
    let v = build(&data(3), &p).unwrap();
    let sb = &v.hash_image[..BLOCK_BYTES];
    assert_eq!(&sb[..8], b"verity\0\0");
    assert_eq!(u32::from_le_bytes(sb[8..12].try_into().unwrap()), 1);
    assert_eq!(u32::from_le_bytes(sb[12..16].try_into().unwrap()), 1);
    assert_eq!(&sb[16..32], p.uuid.as_bytes());
    assert_eq!(&sb[32..38], b"sha256");
    assert!(sb[38..64].iter().all(|&b| b == 0));
    assert_eq!(u32::from_le_bytes(sb[64..68].try_into().unwrap()), 4096);
    assert_eq!(u32::from_le_bytes(sb[68..72].try_into().unwrap()), 4096);
    assert_eq!(u64::from_le_bytes(sb[72..80].try_into().unwrap()), 3);
    assert_eq!(u16::from_le_bytes(sb[80..82].try_into().unwrap()), 32);
    assert!(sb[82..88].iter().all(|&b| b == 0));
    assert_eq!(&sb[88..120], &p.salt);
    assert!(sb[120..].iter().all(|&b| b == 0));
}

#[test]
fn one_block_has_no_tree() {
    let p = params();
    let d = data(1);
    let v = build(&d, &p).unwrap();
    assert_eq!(v.hash_image.len(), BLOCK_BYTES);
    assert_eq!(v.tree_blocks(), 0);
    assert_eq!(v.root_hash, h(&p.salt, &d));
}

#[test]
fn verity_129_blocks_make_two_levels() {
    let p = params();
    let d = data(129);
    let v = build(&d, &p).unwrap();
    // Superblock, level 1 (one block), level 0 (two blocks).
    assert_eq!(v.hash_image.len(), 4 * BLOCK_BYTES);
    assert_eq!(v.tree_blocks(), 3);
    let img = &v.hash_image;
    let level0 = &img[2 * BLOCK_BYTES..];
    assert_eq!(&level0[..32], &h(&p.salt, &d[..BLOCK_BYTES]));
    assert_eq!(
        &level0[128 * 32..129 * 32],
        &h(&p.salt, &d[128 * BLOCK_BYTES..])
    );
    assert!(level0[129 * 32..].iter().all(|&b| b == 0), "zero padding");
    let level1 = &img[BLOCK_BYTES..2 * BLOCK_BYTES];
    assert_eq!(&level1[..32], &h(&p.salt, &level0[..BLOCK_BYTES]));
    assert_eq!(&level1[32..64], &h(&p.salt, &level0[BLOCK_BYTES..]));
    assert!(level1[64..].iter().all(|&b| b == 0));
    assert_eq!(v.root_hash, h(&p.salt, level1));
}

#[test]
fn level_sizes_follow_cryptsetup() {
    for n in [
        1u64, 2, 127, 128, 129, 255, 256, 257, 16383, 16384, 16385, 2_097_153,
    ] {
        // cryptsetup's hash_levels: levels while (n-1) >> (7 * levels) != 0,
        // level i = ceil(n / 128^(i+1)).
        let mut levels = 0;
        while (n - 1) >> (7 * levels) != 0 {
            levels += 1;
        }
        let expected: Vec<u64> = (0..levels)
            .map(|i| n.div_ceil(1u64 << (7 * (i + 1))))
            .collect();
        assert_eq!(level_sizes(n), expected, "n = {n}");
        let tree: u64 = expected.iter().sum();
        assert_eq!(hash_image_len(n * BLOCK).unwrap(), (1 + tree) * BLOCK);
    }
}

#[test]
fn matches_reference_tree() {
    let p = params();
    for (blocks, d) in [
        (2, data(2)),
        (128, data(128)),
        (300, data(300)),
        (16385, numbered(16385)),
    ] {
        let v = build(&d, &p).unwrap();
        let (image, root) = reference(&d, &p);
        assert_eq!(v.hash_image.len(), image.len(), "{blocks} blocks");
        assert!(
            v.hash_image[BLOCK_BYTES..] == image[BLOCK_BYTES..],
            "{blocks} blocks"
        );
        assert_eq!(v.root_hash, root, "{blocks} blocks");
        assert_eq!(v.data_blocks, blocks as u64);
        assert_eq!(
            v.hash_image.len() as u64,
            hash_image_len(d.len() as u64).unwrap()
        );
    }
}

#[test]
fn params_are_deterministic() {
    let a = params_from_identity("slipway qemu-x86_64 1.0", "a");
    assert_eq!(a, params_from_identity("slipway qemu-x86_64 1.0", "a"));
    let b = params_from_identity("slipway qemu-x86_64 1.0", "b");
    assert_ne!(a.salt, b.salt);
    assert_ne!(a.uuid, b.uuid);
    assert_ne!(a.salt[..16], a.uuid.as_bytes()[..]);
    assert_eq!(a.uuid.get_version_num(), 4);
    // The separator keeps ("ab", "c") and ("a", "bc") apart.
    assert_ne!(
        params_from_identity("ab", "c"),
        params_from_identity("a", "bc")
    );
}

#[test]
fn unaligned_and_empty_are_errors() {
    let err = build(&vec![0u8; 4097], &params()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "data size 4097 is not a multiple of 4096 bytes"
    );
    assert!(matches!(build(&[], &params()), Err(VerityError::Empty)));
    assert!(matches!(
        hash_image_len(100),
        Err(VerityError::Unaligned(100))
    ));
}

#[test]
fn hex_and_table() {
    let v = build(&data(2), &params()).unwrap();
    assert_eq!(v.root_hash_hex().len(), 64);
    assert_eq!(v.salt_hex(), hex::encode(params().salt));
    assert_eq!(v.hash_start_block(), 1);
    assert_eq!(
        v.dm_table_params("/dev/vda2", "/dev/vda3"),
        format!(
            "1 /dev/vda2 /dev/vda3 4096 4096 2 1 sha256 {} {}",
            v.root_hash_hex(),
            v.salt_hex()
        )
    );
}

#[test]
fn from_file_matches_in_memory() {
    let p = params();
    let d = data(700);
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(&[0xAA; 3 * BLOCK_BYTES]).unwrap();
    f.write_all(&d).unwrap();
    f.write_all(&[0x55; 5]).unwrap();
    f.flush().unwrap();
    let off = 3 * BLOCK;
    let from_file = build_from_file(f.path(), off, d.len() as u64, &p).unwrap();
    assert_eq!(from_file, build(&d, &p).unwrap());

    let err = build_from_file(f.path(), off + BLOCK, d.len() as u64, &p).unwrap_err();
    assert!(matches!(err, VerityError::Read { .. }), "{err}");
}

// ---- against the real tool ----

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// `veritysetup`, or `None` (after printing SKIPPED) to skip outside CI.
fn veritysetup(test: &str) -> Option<PathBuf> {
    let found = ["/usr/sbin/veritysetup", "/sbin/veritysetup"]
        .iter()
        .map(PathBuf::from)
        .chain(
            std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths)
                .map(|d| d.join("veritysetup")),
        )
        .find(|p| p.is_file());
    if found.is_none() {
        if in_ci() {
            panic!("veritysetup missing: apt-get install cryptsetup-bin");
        }
        eprintln!("SKIPPED {test}: veritysetup missing (apt-get install cryptsetup-bin)");
    }
    found
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn veritysetup_writes_the_same_bytes() {
    let Some(tool) = veritysetup("veritysetup_writes_the_same_bytes") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let p = params();
    for (blocks, d) in [
        (1, data(1)),
        (2, data(2)),
        (128, data(128)),
        (129, data(129)),
        (300, data(300)),
        (16385, numbered(16385)),
    ] {
        let data_path = dir.path().join(format!("data{blocks}"));
        let hash_path = dir.path().join(format!("hash{blocks}"));
        std::fs::write(&data_path, &d).unwrap();
        let (ok, out) = run(Command::new(&tool)
            .arg("format")
            .arg(format!("--salt={}", hex::encode(p.salt)))
            .arg(format!("--uuid={}", p.uuid))
            .arg(&data_path)
            .arg(&hash_path));
        assert!(ok, "veritysetup format failed: {out}");
        let root = out
            .lines()
            .find_map(|l| l.strip_prefix("Root hash:"))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no root hash in: {out}"));

        let v = build(&d, &p).unwrap();
        assert_eq!(v.root_hash_hex(), root, "{blocks} blocks");
        let theirs = std::fs::read(&hash_path).unwrap();
        assert_eq!(v.hash_image.len(), theirs.len(), "{blocks} blocks");
        if let Some(at) = v.hash_image.iter().zip(&theirs).position(|(a, b)| a != b) {
            panic!("{blocks} blocks: hash images differ first at byte {at}");
        }
    }
}

#[test]
fn veritysetup_verifies_our_tree() {
    let Some(tool) = veritysetup("veritysetup_verifies_our_tree") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data_path = dir.path().join("data");
    let hash_path = dir.path().join("hash");
    let mut d = data(300);
    let v = build(&d, &params_from_identity("test", "a")).unwrap();
    std::fs::write(&data_path, &d).unwrap();
    std::fs::write(&hash_path, &v.hash_image).unwrap();
    let verify = || {
        run(Command::new(&tool)
            .arg("verify")
            .arg(&data_path)
            .arg(&hash_path)
            .arg(v.root_hash_hex()))
    };
    let (ok, out) = verify();
    assert!(ok, "veritysetup verify rejected our tree: {out}");

    d[200 * BLOCK_BYTES + 17] ^= 1;
    std::fs::write(&data_path, &d).unwrap();
    let (ok, out) = verify();
    assert!(!ok, "veritysetup verify accepted corrupted data: {out}");
}
