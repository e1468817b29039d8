//! The built disk as standard tools see it: `sfdisk` reads our GPT with the
//! DPS types, names and flags of DESIGN.md, and `fsck.vfat` finds the ESP
//! clean. These tools come with CI's install step; locally, a missing tool
//! skips (in CI it fails).

use std::path::{Path, PathBuf};
use std::process::Command;

use xtask::testing::{in_ci, IMAGE_ENV};

fn image_dir(test: &str) -> Option<PathBuf> {
    match std::env::var_os(IMAGE_ENV) {
        Some(d) => Some(PathBuf::from(d)),
        None => {
            assert!(!in_ci(), "{test}: {IMAGE_ENV} must be set in CI");
            eprintln!("{test}: SKIPPED: {IMAGE_ENV} not set");
            None
        }
    }
}

fn tool(name: &str) -> Option<PathBuf> {
    let found = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            !in_ci(),
            "{name} missing in CI (ci/install-deps.sh installs it)"
        );
        eprintln!("SKIPPED: {name} not installed");
    }
    found
}

#[test]
fn sfdisk_reads_the_design_layout() {
    let (Some(dir), Some(sfdisk)) = (image_dir("sfdisk"), tool("sfdisk")) else {
        return;
    };
    let out = Command::new(sfdisk)
        .arg("-J")
        .arg(dir.join("disk.raw"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let parts = v["partitiontable"]["partitions"].as_array().unwrap();
    let got: Vec<(String, String, String)> = parts
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("").to_string(),
                p["type"].as_str().unwrap_or("").to_lowercase(),
                p["attrs"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let root = "4f68bce3-e8cd-4db1-96e7-fbcaf984b709";
    let verity = "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5";
    let ro = "GUID:60,63";
    let want = [
        ("esp", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", ""),
        ("root-a", root, ro),
        ("root-a-verity", verity, ro),
        ("root-b", root, ro),
        ("root-b-verity", verity, ro),
        ("var", "4d21b016-b534-45c2-a9fb-5c16e091fd2d", ""),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(got, want);
    // 1 MiB alignment.
    for p in parts {
        assert_eq!(p["start"].as_u64().unwrap() % 2048, 0, "{p}");
    }
}

#[test]
fn fsck_vfat_finds_the_esp_clean_and_systemd_boot_in_place() {
    let (Some(dir), Some(fsck)) = (image_dir("fsck.vfat"), tool("fsck.vfat")) else {
        return;
    };
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let esp = &m["partitions"][0];
    assert_eq!(esp["label"], "esp");
    let (off, size) = (
        esp["offset"].as_u64().unwrap(),
        esp["size"].as_u64().unwrap(),
    );
    let mut raw = std::fs::File::open(dir.join("disk.raw")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let esp_img = work.path().join("esp.img");
    {
        use std::io::{Read, Seek, SeekFrom};
        raw.seek(SeekFrom::Start(off)).unwrap();
        let mut data = vec![0u8; size as usize];
        raw.read_exact(&mut data).unwrap();
        std::fs::write(&esp_img, data).unwrap();
    }
    let out = Command::new(fsck).arg("-n").arg(&esp_img).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "fsck.vfat: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("Free cluster summary wrong"), "{text}");

    let mut raw = std::fs::File::open(dir.join("disk.raw")).unwrap();
    let efi = slipway_image::esp::read_file(&mut raw, off, size, "EFI/BOOT/BOOTX64.EFI").unwrap();
    assert_eq!(&efi[..2], b"MZ", "BOOTX64.EFI is a PE image");
    let conf = slipway_image::esp::read_file(&mut raw, off, size, "loader/loader.conf").unwrap();
    assert!(!String::from_utf8_lossy(&conf).contains("default"));
    let entry = slipway_image::esp::read_file(&mut raw, off, size, "loader/entries/slipway-a.conf")
        .unwrap();
    let entry = String::from_utf8(entry).unwrap();
    assert!(
        entry.contains(&format!("\nversion {}\n", m["version"].as_str().unwrap())),
        "{entry}"
    );
    let root_uuid = m["partitions"][1]["uuid"].as_str().unwrap();
    assert!(
        entry.contains(&format!("slipway.root=PARTUUID={root_uuid}")),
        "{entry}"
    );
}

/// Copies `len` bytes at `offset` of `src` into a new file.
fn extract(src: &Path, offset: u64, len: u64, dest: &Path) {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(src).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut data = vec![0u8; len as usize];
    f.read_exact(&mut data).unwrap();
    std::fs::write(dest, data).unwrap();
}

#[test]
fn veritysetup_verifies_slot_a_and_rejects_a_flipped_byte() {
    let (Some(dir), Some(veritysetup)) = (image_dir("veritysetup"), tool("veritysetup")) else {
        return;
    };
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let verity = &m["verity"];
    let root_hash = verity["root_hash"].as_str().unwrap();
    let blocks = verity["data_blocks"].as_u64().unwrap();
    let root = &m["partitions"][1];
    let hash = &m["partitions"][2];
    assert_eq!(
        (root["label"].as_str(), hash["label"].as_str()),
        (Some("root-a"), Some("root-a-verity"))
    );
    // The boot entry carries the same root hash the manifest records.
    let options = m["boot_entries"][0]["options"].as_str().unwrap();
    assert!(
        options.contains(&format!("slipway.roothash={root_hash}")),
        "{options}"
    );

    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("root-a");
    let tree = work.path().join("root-a-verity");
    let raw = dir.join("disk.raw");
    extract(&raw, root["offset"].as_u64().unwrap(), blocks * 4096, &data);
    extract(
        &raw,
        hash["offset"].as_u64().unwrap(),
        hash["size"].as_u64().unwrap(),
        &tree,
    );
    let verify = |data: &Path| {
        Command::new(&veritysetup)
            .arg("verify")
            .arg(data)
            .arg(&tree)
            .arg(root_hash)
            .output()
            .unwrap()
    };
    let out = verify(&data);
    assert!(
        out.status.success(),
        "veritysetup verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut bytes = std::fs::read(&data).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x80;
    std::fs::write(&data, bytes).unwrap();
    let out = verify(&data);
    assert!(!out.status.success(), "veritysetup accepted a flipped byte");
}
