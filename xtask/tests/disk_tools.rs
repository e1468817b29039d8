//! The built disk as standard tools see it: `sfdisk` reads our GPT with the
//! DPS types, names and flags of ARCHITECTURE.md's "On-disk layout", and `fsck.vfat` finds the ESP
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

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
}

fn partition(m: &serde_json::Value, label: &str) -> (u64, u64) {
    let p = m["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["label"] == label)
        .unwrap();
    (p["offset"].as_u64().unwrap(), p["size"].as_u64().unwrap())
}

#[test]
fn e2fsck_finds_the_var_filesystem_clean() {
    let (Some(dir), Some(e2fsck)) = (image_dir("e2fsck"), tool("e2fsck")) else {
        return;
    };
    let (offset, size) = partition(&manifest(&dir), "var");
    let work = tempfile::tempdir().unwrap();
    let var = work.path().join("var.img");
    extract(&dir.join("disk.raw"), offset, size, &var);
    // -f: check even though it is marked clean; -n: change nothing.
    let out = Command::new(e2fsck).arg("-fn").arg(&var).output().unwrap();
    assert!(
        out.status.success(),
        "e2fsck: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let sb = std::fs::read(&var).unwrap();
    let super_block = &sb[1024..2048];
    assert_eq!(&super_block[120..124], b"var\0", "volume label");
    // 4 KiB blocks, covering the whole partition.
    assert_eq!(1024u64 << super_block[24], 4096);
    let blocks = u32::from_le_bytes(super_block[4..8].try_into().unwrap());
    assert_eq!(u64::from(blocks) * 4096, size);
}

/// The init's growth plan, applied to the built image's partition table on
/// a bigger (sparse) disk, gives a table `sfdisk` accepts, with `var`
/// reaching the end of the disk.
#[test]
fn sfdisk_accepts_the_table_the_init_grows() {
    use std::io::{Read, Seek, SeekFrom, Write};
    let (Some(dir), Some(sfdisk)) = (image_dir("sfdisk grow"), tool("sfdisk")) else {
        return;
    };
    let m = manifest(&dir);
    let image_size = m["disk"]["size"].as_u64().unwrap();
    let disk_size = image_size + 3 * 1024 * 1024 * 1024 + 123 * 512;
    let work = tempfile::tempdir().unwrap();
    let disk_path = work.path().join("big.raw");
    let mut raw = std::fs::File::open(dir.join("disk.raw")).unwrap();
    let mut disk = std::fs::File::options()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&disk_path)
        .unwrap();
    disk.set_len(disk_size).unwrap();
    // The primary table (sectors 0-33) and the backup (last 33 sectors of
    // the image) where the image has them.
    for (offset, len) in [(0, 34 * 512), (image_size - 33 * 512, 33 * 512)] {
        let mut buf = vec![0u8; len as usize];
        raw.seek(SeekFrom::Start(offset)).unwrap();
        raw.read_exact(&mut buf).unwrap();
        disk.seek(SeekFrom::Start(offset)).unwrap();
        disk.write_all(&buf).unwrap();
    }
    let growth = slipway_init::gpt_grow::plan(&mut disk, 512, disk_size).unwrap();
    let (var_offset, var_size) = partition(&m, "var");
    assert_eq!(growth.var_offset, var_offset);
    assert_eq!(growth.var_old_size, var_size);
    assert_eq!(
        growth.writes.iter().map(|w| w.what).collect::<Vec<_>>(),
        ["backup GPT", "primary GPT", "protective MBR"]
    );
    for w in &growth.writes {
        disk.seek(SeekFrom::Start(w.offset)).unwrap();
        disk.write_all(&w.data).unwrap();
    }
    drop(disk);

    let verify = Command::new(&sfdisk)
        .arg("--verify")
        .arg(&disk_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&verify.stdout);
    assert!(verify.status.success(), "sfdisk --verify: {text}");
    assert!(!text.contains("not at the end"), "{text}");
    let out = Command::new(&sfdisk)
        .arg("-J")
        .arg(&disk_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let table = &v["partitiontable"];
    let last_lba = disk_size / 512 - 1;
    // The last usable sector is just before the backup entries.
    assert_eq!(table["lastlba"].as_u64().unwrap(), last_lba - 33);
    let var = table["partitions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(var["name"], "var");
    let (start, sectors) = (
        var["start"].as_u64().unwrap(),
        var["size"].as_u64().unwrap(),
    );
    assert_eq!(start * 512, var_offset);
    assert_eq!((sectors * 512) % (1024 * 1024), 0, "var ends on 1 MiB");
    assert!(start + sectors - 1 <= last_lba - 33);
    assert!(
        start + sectors - 1 + 2048 > last_lba - 33,
        "var left a MiB unused"
    );
    assert_eq!(sectors * 512, growth.var_new_size);
}
