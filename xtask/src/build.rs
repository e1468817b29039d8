//! `cargo xtask build-image`: wires the inputs, the guest init and the
//! format writers of `slipway-image` / `slipway-initramfs` into one disk.
//!
//! Output goes to `<out>.partial/` and is renamed to `<out>/` only when
//! complete, so a failed or interrupted build never leaves a folder that
//! looks finished.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use slipway_image::layout::{derived_uuid, Layout, Role, Slot};
use slipway_image::tree::{Node, Tree};
use slipway_image::{bls, esp, gpt_table, rootfs, var_fs, verity};

use crate::board::{Board, VerityArgs};
use crate::inputs::{self, InputOptions, Inputs};
use crate::util::{sha256_bytes, sha256_file};
use crate::{elf_closure, guest, paths, release, static_root};

/// Which init the initramfs carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitKind {
    /// The Slipway init (the product).
    #[default]
    Slipway,
    /// A trivial busybox script that prints [`REFERENCE_MARKER`] and powers
    /// off: the yardstick `bench build` measures our boot against.
    Reference,
}

/// The line the reference init prints once it runs.
pub const REFERENCE_MARKER: &str = "slipway-reference: init reached";

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub board: String,
    /// Defaults to `target/slipway/images/<board>`.
    pub out_dir: Option<PathBuf>,
    pub version: String,
    pub source_date_epoch: u64,
    pub inputs: InputOptions,
    pub init: InitKind,
    /// Also write `disk.qcow2` (needs qemu-img).
    pub qcow2: bool,
    /// dm-verity for the root (the default). Off only for development and
    /// the bench's comparison; the boot entry then says `slipway.verity=off`
    /// and the init warns loudly.
    pub verity: bool,
    /// The key that signs `update.payload` (default: `$SLIPWAY_SIGNING_KEY`,
    /// else the development key, see `release`).
    pub signing_key: Option<PathBuf>,
    /// More files for the root, `(path, mode, bytes)`: tests use it to make
    /// a release that fails its health check.
    pub extra_root_files: Vec<(String, u32, Vec<u8>)>,
}

impl BuildOptions {
    pub fn new(board: &str) -> Result<Self> {
        Ok(Self {
            board: board.to_string(),
            out_dir: None,
            version: default_version(),
            source_date_epoch: default_source_date_epoch()?,
            inputs: InputOptions::default(),
            init: InitKind::Slipway,
            qcow2: true,
            verity: true,
            signing_key: None,
            extra_root_files: Vec::new(),
        })
    }
}

/// The OS version: the workspace version unless `SLIPWAY_VERSION` says
/// otherwise.
pub fn default_version() -> String {
    std::env::var("SLIPWAY_VERSION").unwrap_or_else(|_| env!("CARGO_PKG_VERSION").to_string())
}

/// `SOURCE_DATE_EPOCH` if set, else the time of the last commit, so two
/// builds of one commit agree without anyone setting anything.
pub fn default_source_date_epoch() -> Result<u64> {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        return v
            .trim()
            .parse()
            .with_context(|| format!("SOURCE_DATE_EPOCH={v}: expected seconds since 1970"));
    }
    let out = Command::new("git")
        .args(["log", "-1", "--format=%ct"])
        .current_dir(paths::project_root())
        .output();
    Ok(match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .unwrap_or(0),
        _ => 0,
    })
}

/// What the build produced, and how long each phase took.
#[derive(Debug)]
pub struct BuildReport {
    pub out_dir: PathBuf,
    pub manifest: Manifest,
    pub phases: Vec<(&'static str, Duration)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub format: u32,
    pub os_name: String,
    pub version: String,
    pub build_id: String,
    pub board: String,
    pub source_date_epoch: u64,
    pub init: &'static str,
    pub kernel_release: String,
    pub inputs: Vec<ManifestInput>,
    pub artifacts: Vec<ManifestArtifact>,
    pub disk: ManifestDisk,
    pub partitions: Vec<ManifestPartition>,
    pub boot_entries: Vec<ManifestEntry>,
    /// The dm-verity parameters of slot A's root (also on its command line).
    pub verity: ManifestVerity,
}

#[derive(Debug, Clone, Serialize)]
pub struct ManifestVerity {
    pub enabled: bool,
    pub root_hash: String,
    pub salt: String,
    pub data_blocks: u64,
    pub hash_block_size: u64,
    pub hash_tree_size: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ManifestInput {
    pub role: String,
    pub package: String,
    pub version: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ManifestArtifact {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ManifestDisk {
    pub size: u64,
    pub guid: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ManifestPartition {
    pub number: u32,
    pub label: String,
    pub type_guid: String,
    pub uuid: String,
    pub offset: u64,
    pub size: u64,
    pub attributes: String,
    /// Bytes of content written (0 for partitions left empty for now).
    pub content_size: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ManifestEntry {
    pub file: String,
    pub version: String,
    pub options: String,
}

struct Phases {
    start: Instant,
    done: Vec<(&'static str, Duration)>,
}

impl Phases {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            done: Vec::new(),
        }
    }
    fn end(&mut self, name: &'static str) {
        let d = self.start.elapsed();
        eprintln!("build-image: {name:<10} {:>6.2} s", d.as_secs_f64());
        self.done.push((name, d));
        self.start = Instant::now();
    }
}

pub fn build_image(opts: &BuildOptions) -> Result<BuildReport> {
    let mut phases = Phases::new();
    let boards = paths::boards_dir();
    let board = Board::load(&boards, &opts.board)?;
    let board_text = std::fs::read(boards.join(&opts.board).join("board.toml"))?;
    let inputs = inputs::resolve(&board, &opts.inputs)?;
    phases.end("inputs");

    let guest = guest::build()?;
    let init_bytes =
        std::fs::read(&guest.init).with_context(|| format!("reading {}", guest.init.display()))?;
    let cloud_config_bytes = std::fs::read(&guest.cloud_config)
        .with_context(|| format!("reading {}", guest.cloud_config.display()))?;
    let mut root_programs = vec![(CLOUD_CONFIG_BIN, cloud_config_bytes.clone())];
    for (path, bin) in &guest.root_programs {
        let bytes = std::fs::read(bin).with_context(|| format!("reading {}", bin.display()))?;
        root_programs.push((*path, bytes));
    }
    let busybox = std::fs::read(&inputs.busybox)
        .with_context(|| format!("reading {}", inputs.busybox.display()))?;
    phases.end("guest");

    let package_files = elf_closure::closure(&inputs.extras)
        .with_context(|| format!("board {}: packages.extra", board.name))?;
    let mut common_root = static_root::read(&static_root::common_root_dir(&boards))?;
    // The update engine's trusted keys, then the caller's extra files:
    // both part of the build's identity through the digest.
    let (signing_key, _) = release::signing_key(opts.signing_key.as_deref())?;
    for key in release::trusted_keys(&signing_key)? {
        common_root.insert(
            format!("usr/lib/slipway/update-keys/{}.pub", key.id()),
            Node::File {
                mode: 0o644,
                data: key.to_line("").into_bytes(),
            },
        );
    }
    for (path, mode, data) in &opts.extra_root_files {
        common_root.insert(
            path.trim_start_matches('/').to_string(),
            Node::File {
                mode: *mode,
                data: data.clone(),
            },
        );
    }
    let common_digest = static_root::digest(&common_root);
    let mut guest_parts: Vec<&[u8]> = vec![&init_bytes, &cloud_config_bytes];
    guest_parts.extend(root_programs.iter().skip(1).map(|(_, b)| b.as_slice()));
    guest_parts.push(common_digest.as_bytes());
    let build_id = build_id(&board_text, opts, &inputs, &guest_parts);
    let os_release = os_release(&board, &opts.version, &build_id);
    let mtime = u32::try_from(opts.source_date_epoch).unwrap_or(u32::MAX);

    let modules = slipway_initramfs::modules::KernelModules::open(&inputs.kernel.modules_dir)
        .and_then(|k| k.closure(&board.kernel.modules))
        .with_context(|| format!("board {}: kernel modules", board.name))?;
    let initrd_tree = match opts.init {
        InitKind::Slipway => initramfs_tree(&init_bytes, &os_release, &modules),
        InitKind::Reference => reference_initramfs_tree(&busybox),
    };
    let initrd =
        slipway_initramfs::build_initramfs(&initrd_tree, mtime).context("writing the initramfs")?;
    phases.end("initramfs");

    let applets = busybox_applets(&inputs.busybox)?;
    let root_tree = root_tree(
        &init_bytes,
        &root_programs,
        &busybox,
        &applets,
        &os_release,
        &package_files,
        &common_root,
    )?;
    let mut root_image = std::io::Cursor::new(Vec::new());
    rootfs::write_squashfs(&root_tree, mtime, &mut root_image)?;
    let root_image = root_image.into_inner();
    phases.end("rootfs");

    let identity = format!(
        "{}-{}-{}-{}",
        board.os_name, board.name, opts.version, build_id
    );
    let layout = Layout::plan(board.sizes(), &identity)?;
    // The squashfs padded to whole 4 KiB blocks is what verity covers and
    // what goes into the slot.
    let mut root_image = root_image;
    root_image.resize(root_image.len().next_multiple_of(verity::BLOCK as usize), 0);
    let verity_tree = verity::build(
        &root_image,
        &verity::params_from_identity(&identity, "root-a"),
    )
    .context("computing the dm-verity hash tree of root-a")?;
    phases.end("verity");
    let out = opts
        .out_dir
        .clone()
        .unwrap_or_else(|| paths::image_dir(&board.name));
    let partial = sibling(&out, "partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let disk_path = partial.join("disk.raw");

    let root_a = layout.get(Role::Root(Slot::A));
    let verity_a = layout.get(Role::Verity(Slot::A));
    if verity_tree.hash_image.len() as u64 > verity_a.size {
        bail!(
            "the verity hash tree is {} bytes but board {} gives verity partitions only {} \
             bytes (partitions.verity_mib)",
            verity_tree.hash_image.len(),
            board.name,
            verity_a.size
        );
    }
    if root_image.len() as u64 > root_a.size {
        bail!(
            "the root image is {} bytes but board {} gives root slots only {} bytes \
             (partitions.root_mib)",
            root_image.len(),
            board.name,
            root_a.size
        );
    }
    let kernel = std::fs::read(&inputs.kernel.vmlinuz)
        .with_context(|| format!("reading {}", inputs.kernel.vmlinuz.display()))?;
    let systemd_boot = std::fs::read(&inputs.systemd_boot)
        .with_context(|| format!("reading {}", inputs.systemd_boot.display()))?;
    let entry = bls::Entry {
        os_name: board.os_name.clone(),
        version: opts.version.clone(),
        slot: Slot::A,
        options: board.cmdline(
            Slot::A,
            &root_a.uuid,
            opts.verity
                .then(|| VerityArgs {
                    root_hash: verity_tree.root_hash_hex(),
                    hash_partuuid: verity_a.uuid,
                    salt: verity_tree.salt_hex(),
                    data_blocks: verity_tree.data_blocks,
                })
                .as_ref(),
        ),
    };
    let entry_name = bls::entry_file_name(Slot::A, None);
    let esp_files = vec![
        ("EFI/BOOT/BOOTX64.EFI".to_string(), systemd_boot),
        (
            "loader/loader.conf".to_string(),
            bls::loader_conf().into_bytes(),
        ),
        (
            format!("loader/entries/{entry_name}"),
            entry.render().into_bytes(),
        ),
        (bls::kernel_path(Slot::A), kernel.clone()),
        (bls::initrd_path(Slot::A), initrd.clone()),
    ];
    write_disk(
        &disk_path,
        &layout,
        &esp_files,
        &[
            (Role::Root(Slot::A), root_image.as_slice()),
            (Role::Verity(Slot::A), verity_tree.hash_image.as_slice()),
        ],
        &identity,
        opts.source_date_epoch,
    )?;
    let var = layout.get(Role::Var);
    var_fs::format(
        &disk_path,
        var.offset,
        var.size,
        &derived_uuid(&identity, "var-fs"),
        opts.source_date_epoch,
    )
    .with_context(|| format!("making the ext4 filesystem of the {} partition", var.label))?;
    phases.end("disk");

    // The same release as a signed update payload, for machines running an
    // older one (`cargo xtask publish` puts it in a feed).
    let payload_path = partial.join(release::PAYLOAD_FILE);
    let payload_manifest = release::write_payload(
        &payload_path,
        &slipway_update::payload::Release {
            os_name: board.os_name.clone(),
            version: opts.version.clone(),
            board: board.name.clone(),
            build_id: build_id.clone(),
            cmdline: board.base_cmdline(),
            verity: slipway_update::manifest::VerityInfo {
                root_hash: verity_tree.root_hash_hex(),
                salt: verity_tree.salt_hex(),
                data_blocks: verity_tree.data_blocks,
            },
            chunk_size: slipway_update::manifest::DEFAULT_CHUNK,
        },
        [&root_image, &verity_tree.hash_image, &kernel, &initrd],
        &signing_key,
    )?;
    phases.end("payload");

    // Hash the raw disk while qemu-img converts it: both read 2.5 GB.
    let qcow2_path = partial.join("disk.qcow2");
    let (raw_sum, qcow2) = std::thread::scope(|s| {
        let hasher = s.spawn(|| sha256_file(&disk_path));
        let qcow2 = if opts.qcow2 {
            convert_qcow2(&disk_path, &qcow2_path).map(Some)
        } else {
            Ok(None)
        };
        let sum = hasher
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("hashing thread panicked")));
        (sum, qcow2)
    });
    let raw_sum = raw_sum?;
    let qcow2 = qcow2?;
    phases.end("qcow2+hash");

    let mut artifacts = vec![
        artifact("disk.raw", layout.disk_size, raw_sum),
        artifact("vmlinuz", kernel.len() as u64, sha256_bytes(&kernel)),
        artifact("initrd", initrd.len() as u64, sha256_bytes(&initrd)),
        artifact(
            "root.squashfs",
            root_image.len() as u64,
            sha256_bytes(&root_image),
        ),
    ];
    artifacts.push(artifact(
        release::PAYLOAD_FILE,
        std::fs::metadata(&payload_path)?.len(),
        sha256_file(&payload_path)?,
    ));
    drop(payload_manifest);
    if qcow2.is_some() {
        let len = std::fs::metadata(&qcow2_path)?.len();
        artifacts.push(artifact("disk.qcow2", len, sha256_file(&qcow2_path)?));
    }
    let verity_info = ManifestVerity {
        enabled: opts.verity,
        root_hash: verity_tree.root_hash_hex(),
        salt: verity_tree.salt_hex(),
        data_blocks: verity_tree.data_blocks,
        hash_block_size: verity::BLOCK,
        hash_tree_size: verity_tree.hash_image.len() as u64,
    };
    let manifest = manifest(
        &board,
        opts,
        &build_id,
        &inputs,
        artifacts,
        &layout,
        root_image.len() as u64,
        (entry_name, &entry),
        verity_info,
    );
    let json = serde_json::to_string_pretty(&manifest)? + "\n";
    std::fs::write(partial.join("manifest.json"), &json)?;
    let mut sums = String::new();
    for a in manifest
        .artifacts
        .iter()
        .filter(|a| a.name.starts_with("disk."))
    {
        sums += &format!("{}  {}\n", a.sha256, a.name);
    }
    sums += &format!("{}  manifest.json\n", sha256_bytes(json.as_bytes()));
    std::fs::write(partial.join("SHA256SUMS"), sums)?;

    replace_dir(&partial, &out)?;
    phases.end("finish");
    Ok(BuildReport {
        out_dir: out,
        manifest,
        phases: phases.done,
    })
}

fn artifact(name: &str, size: u64, sha256: String) -> ManifestArtifact {
    ManifestArtifact {
        name: name.to_string(),
        size,
        sha256,
    }
}

/// `dir` with a suffix: `images/qemu-x86_64` → `images/qemu-x86_64.partial`.
fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    dir.with_file_name(name)
}

/// Puts the finished output in place: the old folder is moved aside first,
/// so at every moment `out` is either the old complete image or the new one.
fn replace_dir(partial: &Path, out: &Path) -> Result<()> {
    let old = sibling(out, "old");
    let _ = std::fs::remove_dir_all(&old);
    if out.exists() {
        std::fs::rename(out, &old).with_context(|| format!("moving {} aside", out.display()))?;
    }
    std::fs::rename(partial, out).with_context(|| format!("renaming to {}", out.display()))?;
    let _ = std::fs::remove_dir_all(&old);
    Ok(())
}

fn build_id(board_text: &[u8], opts: &BuildOptions, inputs: &Inputs, guest: &[&[u8]]) -> String {
    let mut parts: Vec<String> = vec![
        sha256_bytes(board_text),
        opts.version.clone(),
        opts.source_date_epoch.to_string(),
        format!("{:?}", opts.init),
    ];
    parts.extend(guest.iter().map(|bin| sha256_bytes(bin)));
    parts.extend(inputs.packages.iter().map(|p| p.sha256.clone()));
    parts.extend(inputs.kernel_override_sha256.clone());
    sha256_bytes(parts.join("\n").as_bytes())[..12].to_string()
}

fn os_release(board: &Board, version: &str, build_id: &str) -> String {
    let name = &board.os_name;
    let id_board = &board.name;
    format!(
        "NAME=\"{name}\"\n\
         ID=slipway\n\
         PRETTY_NAME=\"{name} {version}\"\n\
         VERSION=\"{version}\"\n\
         VERSION_ID={version}\n\
         IMAGE_ID=slipway-{id_board}\n\
         IMAGE_VERSION={version}\n\
         BUILD_ID={build_id}\n\
         SLIPWAY_BOARD={id_board}\n"
    )
}

/// The initramfs: the init as `/init`, the mount points stage 1 uses, the
/// console node the kernel opens before `/init` runs, and the modules.
fn initramfs_tree(
    init: &[u8],
    os_release: &str,
    modules: &[slipway_initramfs::modules::Module],
) -> Tree {
    let mut t = Tree::new();
    for d in ["proc", "sys", "dev", "run", "sysroot", "etc"] {
        t.dir(d, 0o755);
    }
    t.char_device("dev/console", 0o600, 5, 1);
    t.file("init", 0o755, init.to_vec());
    // Its presence tells the init it is stage 1 (the systemd convention).
    t.file("etc/initrd-release", 0o644, os_release.as_bytes().to_vec());
    slipway_initramfs::add_modules(&mut t, modules);
    t
}

fn reference_initramfs_tree(busybox: &[u8]) -> Tree {
    let mut t = Tree::new();
    for d in ["proc", "sys", "dev"] {
        t.dir(d, 0o755);
    }
    t.char_device("dev/console", 0o600, 5, 1);
    t.file("bin/busybox", 0o755, busybox.to_vec());
    t.symlink("bin/sh", "busybox");
    let script =
        format!("#!/bin/sh\necho \"{REFERENCE_MARKER}\" >/dev/console\n/bin/busybox poweroff -f\n");
    t.file("init", 0o755, script.into_bytes());
    t
}

/// The cloud-config tool on the root (stage 2 runs `… boot`).
pub const CLOUD_CONFIG_BIN: &str = "usr/bin/slipway-cloud-config";

/// The root filesystem of a slot: the generated files, then the extra
/// packages' programs and libraries (`package_files`), then
/// `board/common/root/` (`common`).
fn root_tree(
    init: &[u8],
    programs: &[(&str, Vec<u8>)],
    busybox: &[u8],
    applets: &[String],
    os_release: &str,
    package_files: &BTreeMap<String, Node>,
    common: &BTreeMap<String, Node>,
) -> Result<Tree> {
    let mut t = Tree::new();
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "usr/lib", "lib", "etc", "proc", "sys", "dev", "run",
        "var", "home", "mnt", "opt", "srv",
    ] {
        t.dir(d, 0o755);
    }
    t.dir("tmp", 0o1777);
    t.dir("root", 0o700);
    t.file("sbin/init", 0o755, init.to_vec());
    // The cloud-config tool, slipctl and the network daemon.
    t.dir("usr/lib/slipway", 0o755);
    for (path, bytes) in programs {
        t.file(path, 0o755, bytes.clone());
    }
    t.file("bin/busybox", 0o755, busybox.to_vec());
    for applet in applets {
        // Our init is /sbin/init; busybox must not shadow it.
        if !t.contains(applet) {
            t.symlink(applet, "/bin/busybox");
        }
    }
    t.file("usr/lib/os-release", 0o644, os_release.as_bytes().to_vec());
    t.symlink("etc/os-release", "../usr/lib/os-release");
    t.file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\n\
          nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
            .to_vec(),
    );
    // Debian's numbers: devpts is mounted with gid 5 (tty); cloud-config
    // users commonly ask for wheel, adm or users.
    t.file(
        "etc/group",
        0o644,
        b"root:x:0:\nadm:x:4:\ntty:x:5:\nwheel:x:10:\nusers:x:100:\nnogroup:x:65534:\n".to_vec(),
    );
    // Root's password is locked; access is by the serial rescue shell (and
    // SSH keys from cloud-config).
    t.file(
        "etc/shadow",
        0o600,
        b"root:!:1::::::\nnobody:!:1::::::\n".to_vec(),
    );
    t.file("etc/hostname", 0o644, b"slipway\n".to_vec());
    // Empty: "not yet generated". Stage 2 writes the machine's own ID into
    // the /etc overlay at first boot, or bind-mounts a transient one over
    // this file if /etc cannot be made writable.
    t.file("etc/machine-id", 0o444, Vec::new());

    // A package's program replaces a busybox applet link of the same path
    // (the full program is what the board asked for; the applet stays
    // reachable as `busybox NAME`), never a file we generate: /sbin/init,
    // busybox itself, the cloud-config tool, /etc.
    for (path, node) in package_files {
        match t.get(path) {
            None => put(&mut t, path, node),
            Some(Node::Dir { .. }) if matches!(node, Node::Dir { .. }) => {}
            Some(Node::Symlink { target })
                if target == "/bin/busybox" && applets.iter().any(|a| a == path) =>
            {
                put(&mut t, path, node)
            }
            Some(_) => eprintln!("build-image: keeping our /{path} over the package's"),
        }
    }
    // The static files are ours: they replace generated ones, except the
    // init, and never turn a folder into a file.
    for (path, node) in common {
        match (t.get(path), node) {
            (Some(Node::Dir { .. }), Node::Dir { .. }) => {}
            (Some(Node::Dir { .. }), _) => bail!(
                "board/common/root/{path}: the root has a folder there; it cannot become a file"
            ),
            _ if path == "sbin/init" => {
                bail!("board/common/root/{path}: /sbin/init is the Slipway init")
            }
            _ => put(&mut t, path, node),
        }
    }
    Ok(t)
}

fn put(t: &mut Tree, path: &str, node: &Node) {
    match node {
        Node::Dir { mode } => t.dir(path, *mode),
        Node::File { mode, data } => t.file(path, *mode, data.clone()),
        Node::Symlink { target } => t.symlink(path, target),
        Node::CharDevice { mode, major, minor } => t.char_device(path, *mode, *major, *minor),
    };
}

/// The applet paths busybox installs (`bin/ls`, `usr/bin/awk`, …), asked of
/// the binary itself so the list always matches the package.
fn busybox_applets(busybox: &Path) -> Result<Vec<String>> {
    let out = Command::new(busybox)
        .arg("--list-full")
        .output()
        .with_context(|| format!("running {} --list-full", busybox.display()))?;
    if !out.status.success() {
        bail!("{} --list-full failed", busybox.display());
    }
    let list: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().trim_start_matches('/').to_string())
        .filter(|l| !l.is_empty() && l.contains('/') && !l.contains(".."))
        .collect();
    if !list.iter().any(|a| a == "bin/sh") {
        bail!("{} provides no bin/sh applet", busybox.display());
    }
    Ok(list)
}

fn write_disk(
    path: &Path,
    layout: &Layout,
    esp_files: &[(String, Vec<u8>)],
    contents: &[(Role, &[u8])],
    identity: &str,
    epoch: u64,
) -> Result<()> {
    let mut f = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // A sparse file: only what we write takes space.
    f.set_len(layout.disk_size)?;
    gpt_table::write(&mut f, path, layout)?;
    let esp = layout.get(Role::Esp);
    let id = sha256_bytes(format!("{identity}\0esp").as_bytes());
    let volume_id = u32::from_str_radix(&id[..8], 16).unwrap_or(0);
    esp::write(
        &mut f, path, esp.offset, esp.size, volume_id, epoch, esp_files,
    )?;
    for (role, data) in contents {
        let part = layout.get(*role);
        f.seek(SeekFrom::Start(part.offset))?;
        f.write_all(data)
            .with_context(|| format!("writing {} into {}", part.label, path.display()))?;
    }
    f.flush()?;
    Ok(())
}

fn convert_qcow2(raw: &Path, qcow2: &Path) -> Result<()> {
    let out = Command::new("qemu-img")
        .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
        .arg(raw)
        .arg(qcow2)
        .output();
    match out {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => bail!(
            "qemu-img convert to {} failed: {}",
            qcow2.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "qemu-img not found: install it (`apt-get install qemu-utils`) or pass --no-qcow2"
            )
        }
        Err(e) => Err(e).context("running qemu-img"),
    }
}

#[allow(clippy::too_many_arguments)]
fn manifest(
    board: &Board,
    opts: &BuildOptions,
    build_id: &str,
    inputs: &Inputs,
    artifacts: Vec<ManifestArtifact>,
    layout: &Layout,
    root_len: u64,
    (entry_file, entry): (String, &bls::Entry),
    verity: ManifestVerity,
) -> Manifest {
    let mut inputs_list: Vec<ManifestInput> = inputs
        .packages
        .iter()
        .map(|p| ManifestInput {
            role: format!("{:?}", p.role).to_lowercase(),
            package: p.package.clone(),
            version: p.version.clone(),
            sha256: p.sha256.clone(),
        })
        .collect();
    if let Some(sum) = &inputs.kernel_override_sha256 {
        inputs_list.push(ManifestInput {
            role: "kernel".into(),
            package: format!("file:{}", inputs.kernel.vmlinuz.display()),
            version: inputs.kernel.release.clone(),
            sha256: sum.clone(),
        });
    }
    Manifest {
        format: 1,
        os_name: board.os_name.clone(),
        version: opts.version.clone(),
        build_id: build_id.to_string(),
        board: board.name.clone(),
        source_date_epoch: opts.source_date_epoch,
        init: match opts.init {
            InitKind::Slipway => "slipway",
            InitKind::Reference => "reference",
        },
        kernel_release: inputs.kernel.release.clone(),
        inputs: inputs_list,
        artifacts,
        disk: ManifestDisk {
            size: layout.disk_size,
            guid: layout.disk_guid.to_string(),
        },
        partitions: layout
            .partitions
            .iter()
            .map(|p| ManifestPartition {
                number: p.number,
                label: p.label.clone(),
                type_guid: p.type_guid.to_string(),
                uuid: p.uuid.to_string(),
                offset: p.offset,
                size: p.size,
                attributes: format!("{:#x}", p.attributes),
                content_size: match p.role {
                    Role::Root(Slot::A) => root_len,
                    Role::Verity(Slot::A) => verity.hash_tree_size,
                    Role::Esp | Role::Var => p.size,
                    _ => 0,
                },
            })
            .collect(),
        boot_entries: vec![ManifestEntry {
            file: format!("loader/entries/{entry_file}"),
            version: entry.version.clone(),
            options: entry.options.clone(),
        }],
        verity,
    }
}
