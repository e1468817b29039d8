//! The installer on files: a small image made with the builder's own layout
//! and GPT writer, installed to bigger file targets; every refusal.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use slipway_image::gpt_table;
use slipway_image::layout::{Layout, Sizes, MIB};
use slipway_install::progress::{Mode, Progress};
use slipway_install::refuse::{self, Env, Refusal};
use slipway_install::{install, install_from, source, Options, SourceSpec};

struct Image {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    path: PathBuf,
    layout: Layout,
}

/// A sparse image: GPT, then a few data blocks in the ESP, root-a and var
/// (none in slot B), and its SHA256SUMS.
fn image() -> Image {
    let layout = Layout::plan(
        Sizes {
            esp: 2 * MIB,
            root: 4 * MIB,
            verity: MIB,
            var: 2 * MIB,
        },
        "install-test",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk.raw");
    let mut f = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    f.set_len(layout.disk_size).unwrap();
    gpt_table::write(&mut f, &path, &layout).unwrap();
    for (label, at, byte) in [
        ("esp", 0, 0xE5),
        ("root-a", 8192, 0x5A),
        ("var", 4096, 0x7A),
    ] {
        f.write_all_at(&[byte; 4096], part(&layout, label).0 + at)
            .unwrap();
    }
    drop(f);
    let digest = hex::encode(Sha256::digest(std::fs::read(&path).unwrap()));
    std::fs::write(
        dir.path().join("SHA256SUMS"),
        format!("{digest}  disk.raw\n"),
    )
    .unwrap();
    Image {
        dir: dir.path().to_path_buf(),
        _dir: dir,
        path,
        layout,
    }
}

/// `(offset, size)` of a partition of the layout.
fn part(layout: &Layout, label: &str) -> (u64, u64) {
    let p = layout.partitions.iter().find(|p| p.label == label).unwrap();
    (p.offset, p.size)
}

fn opts(source: SourceSpec, target: &Path) -> Options {
    Options {
        source,
        target: target.to_path_buf(),
        user_data: None,
        force: false,
        no_checksum: false,
    }
}

fn quiet() -> Progress {
    Progress::new("test", Mode::Quiet)
}

fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    File::open(path)
        .unwrap()
        .read_exact_at(&mut buf, offset)
        .unwrap();
    buf
}

/// A target file of `size` filled with 0xAA in the given ranges (a disk's
/// old contents), no partition table.
fn dirty_target(dir: &Path, size: u64, dirty: &[(u64, u64)]) -> PathBuf {
    let path = dir.join("target.img");
    let f = File::create(&path).unwrap();
    f.set_len(size).unwrap();
    for &(at, len) in dirty {
        f.write_all_at(&vec![0xAA; len as usize], at).unwrap();
    }
    path
}

fn refusal(err: anyhow::Error) -> Refusal {
    err.downcast::<Refusal>()
        .unwrap_or_else(|e| panic!("not a refusal: {e:#}"))
}

#[test]
fn sparse_copy_writes_data_zeroes_what_is_read_and_puts_the_gpt_at_the_end() {
    let img = image();
    let target_size = 64 * MIB;
    let (root_a, _) = part(&img.layout, "root-a");
    let (root_b, root_b_size) = part(&img.layout, "root-b");
    // Old bytes: inside root-a (read through verity: must become zero),
    // in the middle of the empty slot B (left as is) and its first MiB
    // (signatures: zeroed).
    let dirty = [
        (root_a + 2 * MIB, MIB),
        (root_b + MIB + 4096, 4096),
        (root_b, 4096),
    ];
    let target = dirty_target(&img.dir, target_size, &dirty);
    let report = install(
        &opts(SourceSpec::File(img.path.clone()), &target),
        &mut quiet(),
    )
    .unwrap();

    assert_eq!(report.target_bytes, target_size);
    assert_eq!(report.image_bytes, img.layout.disk_size);
    // Three data blocks, the wiped and the new tables, nothing else.
    assert_eq!(report.written_bytes, 3 * 4096 + 2 * (34 + 33) * 512);
    assert!(report.written_bytes * 100 < report.image_bytes);

    for (label, at, byte) in [
        ("esp", 0, 0xE5),
        ("root-a", 8192, 0x5A),
        ("var", 4096, 0x7A),
    ] {
        let (offset, _) = part(&img.layout, label);
        assert_eq!(
            read_at(&target, offset + at, 4096),
            vec![byte; 4096],
            "{label}"
        );
    }
    assert!(read_at(&target, root_a + 2 * MIB, MIB as usize)
        .iter()
        .all(|&b| b == 0));
    assert!(read_at(&target, root_b, 4096).iter().all(|&b| b == 0));
    assert_eq!(
        read_at(&target, root_b + MIB + 4096, 4096),
        vec![0xAA; 4096]
    );
    assert!(root_b_size > 2 * MIB);

    // The same partitions (UUIDs, types, places); the backup at the end.
    let (guid, parts) = gpt_table::read(&target).unwrap();
    assert_eq!(guid, img.layout.disk_guid);
    assert_eq!(parts.len(), img.layout.partitions.len());
    for (got, want) in parts.iter().zip(&img.layout.partitions) {
        assert_eq!(
            (got.label.as_str(), got.uuid, got.offset, got.size),
            (want.label.as_str(), want.uuid, want.offset, want.size)
        );
    }
    assert_eq!(&read_at(&target, target_size - 512, 8), b"EFI PART");
    // The image's own backup header (in the middle of the target) is not
    // copied.
    assert!(read_at(&target, img.layout.disk_size - 512, 512)
        .iter()
        .all(|&b| b == 0));
}

#[test]
fn user_data_goes_into_a_cidata_seed_partition_before_the_esp() {
    let img = image();
    let ud = img.dir.join("user-data.yaml");
    std::fs::write(&ud, "#cloud-config\nhostname: installed\n").unwrap();
    let target = img.dir.join("new.img");
    let mut o = opts(SourceSpec::File(img.path.clone()), &target);
    o.user_data = Some(ud);
    install(&o, &mut quiet()).unwrap();
    let (_, parts) = gpt_table::read(&target).unwrap();
    let seed = parts.iter().find(|p| p.label == "cidata").unwrap();
    assert_eq!(
        (seed.number, seed.offset, seed.size),
        (7, 40 * 512, (2048 - 40) * 512)
    );
    let head = read_at(&target, seed.offset, 64 * 1024);
    assert_eq!(
        cloud_config::datasource::filesystem_label(&head).map(|(_, l)| l),
        Some("cidata".to_string())
    );
    // A new file target is as long as the image.
    assert_eq!(
        std::fs::metadata(&target).unwrap().len(),
        img.layout.disk_size
    );
}

#[test]
fn user_data_with_errors_is_refused_with_its_line_before_anything() {
    let img = image();
    let ud = img.dir.join("user-data.yaml");
    std::fs::write(
        &ud,
        "#cloud-config\ncoreos:\n  update:\n    reboot_strategy: always\n",
    )
    .unwrap();
    let target = img.dir.join("never.img");
    let mut o = opts(SourceSpec::File(img.path.clone()), &target);
    o.user_data = Some(ud.clone());
    let err = format!("{:#}", install(&o, &mut quiet()).unwrap_err());
    assert!(
        err.contains(&format!("{}:4:22: error", ud.display())),
        "{err}"
    );
    assert!(!target.exists());
}

#[test]
fn a_wrong_checksum_leaves_a_disk_without_a_partition_table() {
    let img = image();
    std::fs::write(
        img.dir.join("SHA256SUMS"),
        format!("{}  disk.raw\n", "00".repeat(32)),
    )
    .unwrap();
    let target = img.dir.join("t.img");
    let err = format!(
        "{:#}",
        install(
            &opts(SourceSpec::File(img.path.clone()), &target),
            &mut quiet()
        )
        .unwrap_err()
    );
    assert!(err.contains("but SHA256SUMS says 0000"), "{err}");
    let f = File::open(&target).unwrap();
    let len = f.metadata().unwrap().len();
    assert_eq!(refuse::describe_contents(&f, len).unwrap(), None);
}

#[test]
fn a_target_with_partitions_needs_force_and_is_left_untouched() {
    let img = image();
    let target = img.dir.join("old.img");
    std::fs::copy(&img.path, &target).unwrap();
    let before = std::fs::read(&target).unwrap();
    let err = install(
        &opts(SourceSpec::File(img.path.clone()), &target),
        &mut quiet(),
    )
    .unwrap_err();
    let r = refusal(err);
    assert_eq!(r.target, target.display().to_string());
    assert!(
        r.reason
            .starts_with("it holds a GPT with 6 partitions: 1 esp 2.0 MiB, 2 root-a 4.0 MiB"),
        "{}",
        r.reason
    );
    assert!(r
        .to_string()
        .ends_with("add --force to overwrite it; nothing was written"));
    assert_eq!(std::fs::read(&target).unwrap(), before);
    let mut o = opts(SourceSpec::File(img.path.clone()), &target);
    o.force = true;
    install(&o, &mut quiet()).unwrap();
}

#[test]
fn a_backup_gpt_alone_still_counts_as_partitions() {
    let img = image();
    let target = img.dir.join("torn.img");
    std::fs::copy(&img.path, &target).unwrap();
    // The primary table torn: only the backup at the end is left.
    File::options()
        .write(true)
        .open(&target)
        .unwrap()
        .write_all_at(&[0u8; 34 * 512], 0)
        .unwrap();
    let err = install(
        &opts(SourceSpec::File(img.path.clone()), &target),
        &mut quiet(),
    )
    .unwrap_err();
    assert!(refusal(err).reason.contains("a GPT with 6 partitions"));
}

#[test]
fn a_target_smaller_than_the_image_is_refused() {
    let img = image();
    let target = dirty_target(&img.dir, 4 * MIB, &[]);
    let r = refusal(
        install(
            &opts(SourceSpec::File(img.path.clone()), &target),
            &mut quiet(),
        )
        .unwrap_err(),
    );
    assert!(
        r.reason
            .starts_with("it is 4.0 MiB (4194304 bytes), smaller than the image's"),
        "{}",
        r.reason
    );
    assert!(read_at(&target, 0, 4 * MIB as usize)
        .iter()
        .all(|&b| b == 0));
}

/// A fake sysfs and /dev: disk vda (254:0) is `img`, with partitions vda1
/// and vda2; the command line names `img`'s root-a.
fn fake_system(img: &Image, cmdline_root: bool) -> (tempfile::TempDir, Env) {
    let dir = tempfile::tempdir().unwrap();
    let sys_dev = dir.path().join("dev-block");
    let sys_class = dir.path().join("class-block");
    let dev = dir.path().join("dev");
    for d in [&sys_dev, &sys_class, &dev] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::fs::create_dir_all(sys_class.join("vda")).unwrap();
    std::fs::write(sys_class.join("vda/dev"), "254:0\n").unwrap();
    std::os::unix::fs::symlink(&img.path, dev.join("vda")).unwrap();
    for (n, devno) in [(1, "254:1"), (2, "254:2")] {
        let p = sys_dev.join("254:0").join(format!("vda{n}"));
        std::fs::create_dir_all(p.join("holders")).unwrap();
        std::fs::write(p.join("partition"), format!("{n}\n")).unwrap();
        std::fs::write(p.join("dev"), format!("{devno}\n")).unwrap();
        let q = sys_dev.join(devno);
        std::fs::create_dir_all(&q).unwrap();
        std::fs::write(q.join("partition"), format!("{n}\n")).unwrap();
    }
    std::fs::create_dir_all(sys_dev.join("254:16/holders")).unwrap();
    let root = img
        .layout
        .partitions
        .iter()
        .find(|p| p.label == "root-a")
        .unwrap()
        .uuid;
    let env = Env {
        cmdline: if cmdline_root {
            format!("quiet slipway.slot=a slipway.root=PARTUUID={root} gpt")
        } else {
            "quiet".into()
        },
        mountinfo: String::new(),
        swaps: "Filename\tType\tSize\tUsed\tPriority\n".into(),
        sys_dev_block: sys_dev,
        sys_class_block: sys_class,
        dev,
    };
    (dir, env)
}

#[test]
fn the_boot_disk_is_refused() {
    let img = image();
    let (_d, env) = fake_system(&img, true);
    let reason = refuse::block_device_in_use("254:0", &env).unwrap().unwrap();
    assert!(
        reason.starts_with(
            "it is the disk this system booted from (it holds the running root, PARTUUID="
        ),
        "{reason}"
    );
    // Another disk of the same machine is fine.
    assert_eq!(refuse::block_device_in_use("254:16", &env).unwrap(), None);
}

#[test]
fn mounted_held_swap_and_partition_targets_are_refused() {
    let img = image();
    let (_d, mut env) = fake_system(&img, false);
    assert_eq!(refuse::block_device_in_use("254:0", &env).unwrap(), None);

    env.mountinfo = "36 25 254:1 / /var rw,relatime shared:5 - ext4 /dev/vda1 rw\n".into();
    assert_eq!(
        refuse::block_device_in_use("254:0", &env).unwrap().unwrap(),
        "vda1 is mounted on /var"
    );
    env.mountinfo.clear();

    std::fs::write(env.sys_dev_block.join("254:0/vda2/holders/dm-0"), "").unwrap();
    assert_eq!(
        refuse::block_device_in_use("254:0", &env).unwrap().unwrap(),
        "vda2 is held by dm-0 (device-mapper, RAID or LVM)"
    );

    assert!(refuse::block_device_in_use("254:1", &env)
        .unwrap()
        .unwrap()
        .starts_with("it is a partition; give the whole disk"));

    let swaps = "Filename\tType\tSize\tUsed\tPriority\n/dev/vdc1 partition 1048572 0 -2\n/swapfile file 1024 0 -3\n";
    assert_eq!(refuse::swap_devices(swaps), vec!["/dev/vdc1".to_string()]);
}

#[test]
fn from_a_used_boot_disk_var_is_made_fresh_and_the_slots_copied() {
    let img = image();
    // A disk that booted: var grown by the init to a bigger disk and full
    // of that machine's state.
    let disk = img.dir.join("boot-disk.img");
    std::fs::copy(&img.path, &disk).unwrap();
    let (var, var_size) = part(&img.layout, "var");
    let f = File::options().write(true).open(&disk).unwrap();
    f.set_len(img.layout.disk_size + 8 * MIB).unwrap();
    f.write_all_at(&[0x55; 8192], var + 4096).unwrap();
    drop(f);
    let source = source::open_disk(&disk).unwrap();
    let target = img.dir.join("installed.img");
    let report = install_from(
        source,
        None,
        &opts(SourceSpec::BootDisk, &target),
        &mut quiet(),
    )
    .unwrap();
    let template_len = slipway_install::var_template::LEN;
    assert_eq!(report.image_bytes, var + template_len + 33 * 512);
    let (_, parts) = gpt_table::read(&target).unwrap();
    let got_var = parts.iter().find(|p| p.label == "var").unwrap();
    assert_eq!((got_var.offset, got_var.size), (var, template_len));
    assert!(var_size < template_len);
    // The slots and ESP as on the disk; var is the template, not the state.
    let (root_a, _) = part(&img.layout, "root-a");
    assert_eq!(read_at(&target, root_a + 8192, 4096), vec![0x5A; 4096]);
    let sb = read_at(&target, var + 1024, 1024);
    assert_eq!(&sb[0x38..0x3a], &[0x53, 0xef]);
    assert_eq!(
        &sb[0x68..0x78],
        slipway_install::var_template::uuid().as_bytes()
    );
    assert!(!read_at(&target, var + 4096, 8192).contains(&0x55));
}

#[test]
fn the_checksum_file_is_required_unless_skipped() {
    let img = image();
    std::fs::remove_file(img.dir.join("SHA256SUMS")).unwrap();
    let target = img.dir.join("t.img");
    let err = format!(
        "{:#}",
        install(
            &opts(SourceSpec::File(img.path.clone()), &target),
            &mut quiet()
        )
        .unwrap_err()
    );
    assert!(err.contains("SHA256SUMS: reading"), "{err}");
    assert!(!target.exists());
    let mut o = opts(SourceSpec::File(img.path.clone()), &target);
    o.no_checksum = true;
    install(&o, &mut quiet()).unwrap();
}
