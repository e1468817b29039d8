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
use serde::{Deserialize, Serialize};
use slipway_image::layout::{Layout, Role, Slot};
use slipway_image::tree::{Node, Tree};
use slipway_image::{bls, esp, gpt_table, rootfs, var_fs, verity};

use crate::board::{Board, Verity, VerityArgs};
use crate::inputs::{self, InputOptions, Inputs};
use crate::package_setup::{Made, Setup};
use crate::util::{sha256_bytes, sha256_file, sha256_sparse_file};
use crate::{elf_closure, guest, package_setup, paths, release, sbom, static_root};

mod identity;
mod stamp;

pub use identity::ImageIdentity;

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

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub os_name: String,
    pub version: String,
    pub build_id: String,
    pub board: String,
    pub source_date_epoch: u64,
    pub init: String,
    pub kernel_release: String,
    pub inputs: Vec<ManifestInput>,
    pub artifacts: Vec<ManifestArtifact>,
    pub disk: ManifestDisk,
    pub partitions: Vec<ManifestPartition>,
    pub boot_entries: Vec<ManifestEntry>,
    /// The dm-verity parameters of slot A's root (also on its command line).
    pub verity: ManifestVerity,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestVerity {
    pub enabled: bool,
    pub root_hash: String,
    pub salt: String,
    pub data_blocks: u64,
    pub hash_block_size: u64,
    pub hash_tree_size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestInput {
    pub role: String,
    pub package: String,
    pub version: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestArtifact {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestDisk {
    pub size: u64,
    pub guid: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// The phases, each a function with a typed product: inputs and guest
/// programs ([`prepare`]) → initramfs ([`make_initramfs`]) → root image
/// and its verity tree ([`make_root`]) → disk ([`make_disk`]) → payload
/// ([`make_payload`]) → artifacts ([`finish`]). An output folder that
/// holds a build of exactly these inputs is kept ([`up_to_date`]).
pub fn build_image(opts: &BuildOptions) -> Result<BuildReport> {
    let mut phases = Phases::new();
    let p = prepare(opts)?;
    phases.end("inputs+guest");
    let out = opts
        .out_dir
        .clone()
        .unwrap_or_else(|| paths::image_dir(&p.board.name));
    let fingerprint = match up_to_date(opts, &p, &out)? {
        UpToDate::Yes(manifest) => {
            let manifest = *manifest;
            phases.end("up-to-date");
            eprintln!("build-image: {} is up to date", out.display());
            return Ok(BuildReport {
                out_dir: out,
                manifest,
                phases: phases.done,
            });
        }
        UpToDate::No(fingerprint) => fingerprint,
    };

    // The SBOM's crate list (`cargo tree`, about 0.4 s) while the image is
    // made; only for a build that is not up to date.
    let guest_crates = std::thread::spawn(|| sbom::guest_crates(&guest::packages()));

    let contents = Contents::resolve(opts, &p)?;
    let initrd = make_initramfs(opts, &p, &contents)?;
    phases.end("initramfs");
    let root = make_root(&p, &contents)?;
    phases.end("rootfs");
    let identity = ImageIdentity::new(&p.board.os_name, &p.board.name, &opts.version, &p.build_id);
    let verity_tree = verity::build(&root, &identity.verity_params("root-a"))
        .context("computing the dm-verity hash tree of root-a")?;
    phases.end("verity");

    let partial = sibling(&out, "partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let disk = make_disk(
        opts,
        &p,
        &identity,
        &SlotA {
            root: &root,
            verity: &verity_tree,
            initrd: &initrd,
        },
        &partial,
    )?;
    phases.end("disk");

    // The disk's sha256 is the longest single piece of work left (2.6 GB,
    // mostly holes, through one core's SHA-NI at about 1.4 GB/s): it runs
    // on its own thread while the payload, the qcow2 and the other sums
    // take the other core, and reads only the allocated extents.
    let disk_sum = {
        let path = disk.path.clone();
        std::thread::spawn(move || match holes(&path) {
            Some(holes) => sha256_sparse_file(&path, &holes),
            None => sha256_file(&path),
        })
    };

    let payload_path = make_payload(
        opts,
        &p,
        &root,
        &verity_tree,
        &disk.kernel,
        &initrd,
        &partial,
    )?;
    phases.end("payload");

    // qemu-img reads only the allocated extents (about 110 MB of 2.6 GB).
    let qcow2_path = partial.join("disk.qcow2");
    if opts.qcow2 {
        convert_qcow2(&disk.path, &qcow2_path)?;
    }
    phases.end("qcow2");

    let mut artifacts = vec![
        artifact(
            "vmlinuz",
            disk.kernel.len() as u64,
            sha256_bytes(&disk.kernel),
        ),
        artifact("initrd", initrd.len() as u64, sha256_bytes(&initrd)),
        artifact("root.squashfs", root.len() as u64, sha256_bytes(&root)),
    ];
    artifacts.push(file_artifact(&payload_path)?);
    if opts.qcow2 {
        artifacts.push(file_artifact(&qcow2_path)?);
    }
    let disk_sum = disk_sum
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the thread hashing disk.raw panicked")))?;
    artifacts.insert(0, artifact("disk.raw", disk.layout.disk_size, disk_sum));
    phases.end("sums");

    let guest_crates = guest_crates
        .join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("listing the guest crates panicked")))?;
    let manifest = finish(
        opts,
        &p,
        Finished {
            artifacts,
            disk: &disk,
            root_len: root.len() as u64,
            verity: ManifestVerity {
                enabled: opts.verity,
                root_hash: verity_tree.root_hash_hex(),
                salt: verity_tree.salt_hex(),
                data_blocks: verity_tree.data_blocks,
                hash_block_size: verity::BLOCK,
                hash_tree_size: verity_tree.hash_image.len() as u64,
            },
            guest_crates: &guest_crates,
        },
        &partial,
    )?;
    phases.end("sbom");

    // Last: the stamp lists every file in the folder.
    if let Some(fingerprint) = &fingerprint {
        stamp::record(&partial, fingerprint)?;
    }
    replace_dir(&partial, &out)?;
    phases.end("finish");
    Ok(BuildReport {
        out_dir: out,
        manifest,
        phases: phases.done,
    })
}

/// The product of the first phase: the board, its checked packages, the
/// guest programs' bytes, the files every root carries, and the build ID
/// all of them decide.
struct Prepared {
    board: Board,
    boards: PathBuf,
    inputs: Inputs,
    init: Vec<u8>,
    /// `(path on the root, bytes)`, the cloud-config tool first.
    programs: Vec<(&'static str, Vec<u8>)>,
    busybox: Vec<u8>,
    setup: Setup,
    /// `board/common/root/`, the update keys and the caller's extra files.
    common_root: BTreeMap<String, Node>,
    common_digest: String,
    signing_key: slipway_update::keys::SecretKey,
    build_id: String,
}

/// Inputs and guest programs: the guest programs compile (CPU) while the
/// board's packages are fetched and checked (mostly network); on a cold
/// machine each takes minutes, and neither needs the other.
fn prepare(opts: &BuildOptions) -> Result<Prepared> {
    let boards = paths::boards_dir();
    let board = Board::load(&boards, &opts.board)?;
    let board_text = std::fs::read(boards.join(&opts.board).join("board.toml"))?;
    let (inputs, guest) = std::thread::scope(|s| {
        let guest = s.spawn(guest::build);
        let inputs = inputs::resolve(&board, &opts.inputs);
        if let Err(e) = &inputs {
            eprintln!("build-image: {e:#}; waiting for the guest programs' build to end");
        }
        let guest = guest
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the guest programs' build panicked")));
        if let (Err(_), Err(e)) = (&inputs, &guest) {
            eprintln!("build-image: {e:#}");
        }
        (inputs, guest)
    });
    let (inputs, guest) = (inputs?, guest?);
    let read =
        |path: &Path| std::fs::read(path).with_context(|| format!("reading {}", path.display()));
    let init = read(&guest.init)?;
    let mut programs = vec![(CLOUD_CONFIG_BIN, read(&guest.cloud_config)?)];
    for (path, bin) in &guest.root_programs {
        programs.push((*path, read(bin)?));
    }
    let busybox = read(&inputs.busybox)?;

    let setup = Setup::load(&boards)?;
    let setup_text = std::fs::read(package_setup::path(&boards))?;
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
    let mut guest_parts: Vec<&[u8]> = vec![&init];
    guest_parts.extend(programs.iter().map(|(_, b)| b.as_slice()));
    guest_parts.push(common_digest.as_bytes());
    guest_parts.push(&setup_text);
    let build_id = build_id(&board_text, opts, &inputs, &guest_parts);
    Ok(Prepared {
        board,
        boards,
        inputs,
        init,
        programs,
        busybox,
        setup,
        common_root,
        common_digest,
        signing_key,
        build_id,
    })
}

enum UpToDate {
    /// The folder holds a build of exactly these inputs.
    Yes(Box<Manifest>),
    /// Build it; the fingerprint to record (`None`: this build cannot be
    /// fingerprinted, see `stamp`).
    No(Option<stamp::Fingerprint>),
}

/// Everything that decides the bytes has been read or checked by now (the
/// guest programs built, the packages checked against the lock): if the
/// output folder holds a build of exactly this, it is kept.
fn up_to_date(opts: &BuildOptions, p: &Prepared, out: &Path) -> Result<UpToDate> {
    let previous = stamp::Previous::read(out);
    let fingerprint = stamp::fingerprint(
        &stamp::Read {
            board: &p.board.name,
            boards: &p.boards,
            opts,
            inputs: &p.inputs,
            init: &p.init,
            programs: &p.programs,
            root_digest: &p.common_digest,
            signing_key: &p.signing_key.public().to_line(""),
        },
        &previous,
    )?;
    if let Some(fingerprint) = &fingerprint {
        match stamp::check(out, &previous, fingerprint).and_then(|()| read_manifest(out)) {
            Ok(manifest) => return Ok(UpToDate::Yes(Box::new(manifest))),
            Err(why) => eprintln!("build-image: building {} ({why})", out.display()),
        }
    }
    Ok(UpToDate::No(fingerprint))
}

/// What the initramfs and the root are made of besides the prepared
/// files: os-release, the kernel modules of each, the extra packages'
/// files, the timestamp every file carries.
struct Contents {
    os_release: String,
    mtime: u32,
    initramfs_modules: Vec<slipway_initramfs::modules::Module>,
    root_modules: slipway_initramfs::RootModules,
    package_files: BTreeMap<String, Node>,
}

impl Contents {
    fn resolve(opts: &BuildOptions, p: &Prepared) -> Result<Contents> {
        let board = &p.board;
        let takes: BTreeMap<String, elf_closure::Take> = p
            .setup
            .for_listed(&board.packages.extra)
            .map(|(name, pkg)| {
                (
                    name.to_string(),
                    elf_closure::Take {
                        files: pkg.files.clone(),
                        leave_out: pkg.leave_out.clone(),
                    },
                )
            })
            .collect();
        let package_files = elf_closure::closure_with(&p.inputs.extras, &takes)
            .with_context(|| format!("board {}: packages.extra", board.name))?;
        let kernel_modules =
            slipway_initramfs::modules::KernelModules::open(&p.inputs.kernel.modules_dir)
                .with_context(|| format!("board {}: kernel modules", board.name))?;
        let initramfs_modules = kernel_modules
            .closure(&board.kernel.modules)
            .with_context(|| format!("board {}: kernel.modules", board.name))?;
        let root_modules = kernel_modules
            .root_modules(&board.kernel.root_modules)
            .with_context(|| format!("board {}: kernel.root_modules", board.name))?;
        Ok(Contents {
            os_release: os_release(board, &opts.version, &p.build_id, opts.source_date_epoch),
            mtime: u32::try_from(opts.source_date_epoch).unwrap_or(u32::MAX),
            initramfs_modules,
            root_modules,
            package_files,
        })
    }
}

fn make_initramfs(opts: &BuildOptions, p: &Prepared, c: &Contents) -> Result<Vec<u8>> {
    let tree = match opts.init {
        InitKind::Slipway => initramfs_tree(&p.init, &c.os_release, &c.initramfs_modules),
        InitKind::Reference => reference_initramfs_tree(&p.busybox),
    };
    slipway_initramfs::build_initramfs(&tree, c.mtime).context("writing the initramfs")
}

/// The root image: the squashfs padded to whole 4 KiB blocks, which is
/// what verity covers and what goes into the slot.
fn make_root(p: &Prepared, c: &Contents) -> Result<Vec<u8>> {
    let applets = busybox_applets(&p.inputs.busybox)?;
    let tree = root_tree(&RootParts {
        init: &p.init,
        programs: &p.programs,
        busybox: &p.busybox,
        applets: &applets,
        os_release: &c.os_release,
        setup: &p.setup,
        listed: &p.board.packages.extra,
        modules: (&p.inputs.kernel.release, &c.root_modules),
        package_files: &c.package_files,
        common: &p.common_root,
    })?;
    let mut image = std::io::Cursor::new(Vec::new());
    rootfs::write_squashfs(
        &tree,
        c.mtime,
        Some(&paths::slipway_dir().join("cache/squashfs-blocks")),
        &mut image,
    )?;
    let mut image = image.into_inner();
    image.resize(image.len().next_multiple_of(verity::BLOCK as usize), 0);
    Ok(image)
}

/// What goes into slot A.
struct SlotA<'a> {
    root: &'a [u8],
    verity: &'a verity::Verity,
    initrd: &'a [u8],
}

/// The disk image and what the later phases need of it.
struct Disk {
    path: PathBuf,
    layout: Layout,
    kernel: Vec<u8>,
    entry_name: String,
    entry: bls::Entry,
}

/// The raw disk: the partition table, the ESP (systemd-boot, the loader
/// configuration, slot A's entry, kernel and initramfs), slot A's root and
/// verity partitions, and an empty ext4 `/var`.
fn make_disk(
    opts: &BuildOptions,
    p: &Prepared,
    identity: &ImageIdentity,
    slot: &SlotA,
    partial: &Path,
) -> Result<Disk> {
    let board = &p.board;
    let layout = identity.layout(board.sizes())?;
    let root_a = layout.get(Role::Root(Slot::A));
    let verity_a = layout.get(Role::Verity(Slot::A));
    if slot.verity.hash_image.len() as u64 > verity_a.size {
        bail!(
            "the verity hash tree is {} bytes but board {} gives verity partitions only {} \
             bytes (partitions.verity_mib)",
            slot.verity.hash_image.len(),
            board.name,
            verity_a.size
        );
    }
    if slot.root.len() as u64 > root_a.size {
        bail!(
            "the root image is {} bytes but board {} gives root slots only {} bytes \
             (partitions.root_mib)",
            slot.root.len(),
            board.name,
            root_a.size
        );
    }
    let kernel = std::fs::read(&p.inputs.kernel.vmlinuz)
        .with_context(|| format!("reading {}", p.inputs.kernel.vmlinuz.display()))?;
    let systemd_boot = std::fs::read(&p.inputs.systemd_boot)
        .with_context(|| format!("reading {}", p.inputs.systemd_boot.display()))?;
    let verity = if opts.verity {
        Verity::On(
            VerityArgs::new(
                &slot.verity.root_hash_hex(),
                verity_a.uuid,
                &slot.verity.salt_hex(),
                slot.verity.data_blocks,
            )
            .context("the slot's verity parameters")?,
        )
    } else {
        Verity::Off
    };
    let entry = bls::Entry {
        os_name: board.os_name.clone(),
        version: opts.version.clone(),
        slot: Slot::A,
        options: board.cmdline(Slot::A, &root_a.uuid, verity)?,
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
        (bls::initrd_path(Slot::A), slot.initrd.to_vec()),
    ];
    let path = partial.join("disk.raw");
    write_disk(
        &path,
        &layout,
        &esp_files,
        &[
            (Role::Root(Slot::A), slot.root),
            (Role::Verity(Slot::A), slot.verity.hash_image.as_slice()),
        ],
        identity.esp_volume_id(),
        opts.source_date_epoch,
    )?;
    let var = layout.get(Role::Var);
    var_fs::format(
        &path,
        var.offset,
        var.size,
        &identity.uuid("var-fs"),
        opts.source_date_epoch,
    )
    .with_context(|| format!("making the ext4 filesystem of the {} partition", var.label))?;
    Ok(Disk {
        path,
        layout,
        kernel,
        entry_name,
        entry,
    })
}

/// The same release as a signed update payload, for machines running an
/// older one (`cargo xtask publish` puts it in a feed).
fn make_payload(
    opts: &BuildOptions,
    p: &Prepared,
    root: &[u8],
    verity_tree: &verity::Verity,
    kernel: &[u8],
    initrd: &[u8],
    partial: &Path,
) -> Result<PathBuf> {
    let path = partial.join(release::PAYLOAD_FILE);
    release::write_payload(
        &path,
        &slipway_update::payload::Release {
            os_name: p.board.os_name.clone(),
            version: opts.version.clone(),
            board: p.board.name.clone(),
            build_id: p.build_id.clone(),
            cmdline: p.board.base_cmdline(),
            verity: slipway_update::manifest::VerityInfo {
                root_hash: verity_tree.root_hash_hex(),
                salt: verity_tree.salt_hex(),
                data_blocks: verity_tree.data_blocks,
            },
            chunk_size: slipway_update::manifest::DEFAULT_CHUNK,
        },
        [root, &verity_tree.hash_image, kernel, initrd],
        &p.signing_key,
    )?;
    Ok(path)
}

/// What the last phase writes down.
struct Finished<'a> {
    artifacts: Vec<ManifestArtifact>,
    disk: &'a Disk,
    root_len: u64,
    verity: ManifestVerity,
    guest_crates: &'a [sbom::Crate],
}

/// The SBOM, `manifest.json` and `SHA256SUMS` in the output folder.
fn finish(opts: &BuildOptions, p: &Prepared, f: Finished, partial: &Path) -> Result<Manifest> {
    let mut artifacts = f.artifacts;
    let (sbom_size, sbom_sum) = sbom::write(
        partial,
        &p.inputs,
        f.guest_crates,
        &sbom::Identity {
            os_name: &p.board.os_name,
            board: &p.board.name,
            version: &opts.version,
            build_id: &p.build_id,
            source_date_epoch: opts.source_date_epoch,
        },
    )?;
    artifacts.push(artifact(sbom::FILE, sbom_size, sbom_sum.clone()));
    let manifest = manifest(
        &p.board,
        opts,
        &p.build_id,
        &p.inputs,
        artifacts,
        &f.disk.layout,
        f.root_len,
        (f.disk.entry_name.clone(), &f.disk.entry),
        f.verity,
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
    // The SBOM is not a disk; it is listed by name.
    sums += &format!("{sbom_sum}  {}\n", sbom::FILE);
    sums += &format!("{}  manifest.json\n", sha256_bytes(json.as_bytes()));
    std::fs::write(partial.join("SHA256SUMS"), sums)?;
    Ok(manifest)
}

/// A file of the output folder as a manifest artifact, by its file name.
fn file_artifact(path: &Path) -> Result<ManifestArtifact> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let size = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    Ok(artifact(&name, size, sha256_file(path)?))
}

/// The manifest of a finished build in `out`.
fn read_manifest(out: &Path) -> std::result::Result<Manifest, String> {
    let path = out.join("manifest.json");
    let text = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))
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

/// `/etc/os-release` (and the initramfs's `initrd-release`).
/// `SLIPWAY_BUILD_TIME` is `SOURCE_DATE_EPOCH`: the update engine takes a
/// clock before it for a wrong one.
fn os_release(board: &Board, version: &str, build_id: &str, built_at: u64) -> String {
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
         SLIPWAY_BOARD={id_board}\n\
         SLIPWAY_BUILD_TIME={built_at}\n"
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

/// What the root of a slot is made of.
struct RootParts<'a> {
    init: &'a [u8],
    programs: &'a [(&'a str, Vec<u8>)],
    busybox: &'a [u8],
    applets: &'a [String],
    os_release: &'a str,
    /// Accounts, alternatives, folders and enabled units (packages.toml).
    setup: &'a Setup,
    /// The board's `packages.extra`.
    listed: &'a [String],
    /// The kernel release and the modules `modprobe` loads from the root.
    modules: (&'a str, &'a slipway_initramfs::RootModules),
    package_files: &'a BTreeMap<String, Node>,
    common: &'a BTreeMap<String, Node>,
}

/// The root filesystem of a slot: the generated files (the init, busybox,
/// accounts, what packages.toml makes, the root's kernel modules), then
/// the extra packages' files (`package_files`), then `board/common/root/`
/// (`common`).
fn root_tree(p: &RootParts) -> Result<Tree> {
    let RootParts {
        init,
        programs,
        busybox,
        applets,
        os_release,
        setup,
        listed,
        modules: (release, root_modules),
        package_files,
        common,
    } = *p;
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
    if !t.contains("sbin/modprobe") {
        bail!("busybox provides no sbin/modprobe applet: the root's modules need one");
    }
    t.file("usr/lib/os-release", 0o644, os_release.as_bytes().to_vec());
    t.symlink("etc/os-release", "../usr/lib/os-release");
    t.file("etc/passwd", 0o644, setup.passwd().into_bytes());
    t.file("etc/group", 0o644, setup.group().into_bytes());
    t.file("etc/shadow", 0o600, setup.shadow().into_bytes());
    t.file("etc/hostname", 0o644, b"slipway\n".to_vec());
    // Empty: "not yet generated". Stage 2 writes the machine's own ID into
    // the /etc overlay at first boot, or bind-mounts a transient one over
    // this file if /etc cannot be made writable.
    t.file("etc/machine-id", 0o444, Vec::new());
    // What the packages' maintainer scripts would have made.
    let made = setup.made(listed);
    for m in &made {
        match m {
            Made::Dir(path) => {
                t.dir(path, 0o755);
            }
            Made::Symlink { path, target } => {
                t.symlink(path, target);
            }
        }
    }
    // Folders on /var the scripts would have made: the init makes them at
    // every boot (/var is not in the image).
    for (path, text) in setup.tmpfiles(listed) {
        t.file(&path, 0o644, text.into_bytes());
    }
    // The modules modprobe finds (busybox reads /lib/modules/`uname -r`).
    for (path, data) in root_modules.all_files() {
        t.file(&format!("lib/modules/{release}/{path}"), 0o644, data);
    }

    // A package's program replaces a busybox applet link of the same path
    // (the full program is what the board asked for; the applet stays
    // reachable as `busybox NAME`), never a file we generate: /sbin/init,
    // busybox itself, the cloud-config tool, /etc/passwd, the alternatives.
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
    // Every alternative and enabled unit must point at something the root
    // has: a typo or a package that moved a file fails the build, not the
    // machine.
    for m in &made {
        if let Made::Symlink { path, target } = m {
            let parent = path.rsplit_once('/').map_or("", |(d, _)| d);
            if resolve_in(&t, parent, target).is_none() {
                bail!(
                    "{}: /{path} -> {target} points at nothing on the root",
                    package_setup::FILE
                );
            }
        }
    }
    Ok(t)
}

/// Follows `target` (as written in a link inside folder `dir`) through the
/// tree's symlinks to a file; `None` if it leads nowhere.
fn resolve_in(t: &Tree, dir: &str, target: &str) -> Option<String> {
    let mut pending: std::collections::VecDeque<String> = if target.starts_with('/') {
        target.split('/').map(String::from).collect()
    } else {
        dir.split('/')
            .chain(target.split('/'))
            .map(String::from)
            .collect()
    };
    let mut done: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = pending.pop_front() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => done.push(c),
        }
        let cur = done.join("/");
        match t.get(&cur)? {
            Node::Symlink { target } => {
                hops += 1;
                if hops > 40 {
                    return None;
                }
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                for part in target.split('/').rev() {
                    pending.push_front(part.to_string());
                }
            }
            Node::File { .. } if !pending.iter().all(|p| p.is_empty() || p == ".") => return None,
            _ => {}
        }
    }
    match t.get(&done.join("/"))? {
        Node::File { .. } => Some(done.join("/")),
        _ => None,
    }
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
    volume_id: u32,
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

/// The holes of the raw disk `raw` as its filesystem reports them
/// (`qemu-img map`, which asks with `SEEK_DATA`/`SEEK_HOLE`): ranges that
/// read as zeros and are not stored. `None` when qemu-img cannot say (not
/// installed with `--no-qcow2`): the whole file is then read.
fn holes(raw: &Path) -> Option<Vec<(u64, u64)>> {
    #[derive(Deserialize)]
    struct Extent {
        start: u64,
        length: u64,
        data: bool,
        zero: bool,
    }
    let out = Command::new("qemu-img")
        .args(["map", "--output=json", "-f", "raw"])
        .arg(raw)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let map: Vec<Extent> = serde_json::from_slice(&out.stdout).ok()?;
    Some(
        map.into_iter()
            .filter(|e| e.zero && !e.data)
            .map(|e| (e.start, e.length))
            .collect(),
    )
}

/// `qemu-img --version`'s first line: disk.qcow2's bytes depend on it.
fn qemu_img_version() -> Result<String> {
    let out = Command::new("qemu-img").arg("--version").output();
    match out {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()),
        Ok(o) => bail!(
            "qemu-img --version failed: {}",
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
        }
        .to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(data: &str) -> Node {
        Node::File {
            mode: 0o755,
            data: data.as_bytes().to_vec(),
        }
    }

    fn parts_tree(package_files: &BTreeMap<String, Node>) -> Result<Tree> {
        let setup = Setup::load(&paths::boards_dir()).unwrap();
        let listed = ["iptables", "docker.io", "etcd-server"]
            .map(String::from)
            .to_vec();
        let modules = slipway_initramfs::RootModules {
            files: vec![("kernel/net/veth.ko".into(), b"\x7fELF".to_vec())],
            modules_dep: "kernel/net/veth.ko:\n".into(),
            modules_alias: "alias rtnl-link-veth veth\n".into(),
            modules_builtin: String::new(),
        };
        let applets = vec!["bin/sh".to_string(), "sbin/modprobe".to_string()];
        root_tree(&RootParts {
            init: b"init",
            programs: &[],
            busybox: b"busybox",
            applets: &applets,
            os_release: "ID=slipway\n",
            setup: &setup,
            listed: &listed,
            modules: ("6.1.0-test", &modules),
            package_files,
            common: &BTreeMap::new(),
        })
    }

    fn engine_files() -> BTreeMap<String, Node> {
        let mut files = BTreeMap::new();
        files.insert("usr/sbin/xtables-nft-multi".to_string(), file("elf"));
        for tool in ["iptables", "ip6tables", "arptables", "ebtables"] {
            for suffix in ["", "-restore", "-save"] {
                files.insert(
                    format!("usr/sbin/{tool}-nft{suffix}"),
                    Node::Symlink {
                        target: "xtables-nft-multi".into(),
                    },
                );
            }
        }
        files.insert(
            "usr/lib/systemd/system/docker.socket".to_string(),
            file("[Socket]\n"),
        );
        // A package file where a generated one is: the generated one stays.
        files.insert("etc/passwd".to_string(), file("mallory:x:0:0::/:/bin/sh\n"));
        files
    }

    #[test]
    fn the_root_gets_accounts_alternatives_folders_units_and_modules() {
        let t = parts_tree(&engine_files()).unwrap();
        assert_eq!(
            t.get("usr/sbin/iptables"),
            Some(&Node::Symlink {
                target: "/etc/alternatives/iptables".into()
            })
        );
        assert_eq!(
            resolve_in(&t, "usr/sbin", "/etc/alternatives/iptables").as_deref(),
            Some("usr/sbin/xtables-nft-multi")
        );
        assert_eq!(
            t.get("usr/lib/systemd/system/sockets.target.wants/docker.socket"),
            Some(&Node::Symlink {
                target: "../docker.socket".into()
            })
        );
        assert_eq!(t.get("etc/docker"), Some(&Node::Dir { mode: 0o755 }));
        let text = |p: &str| match t.get(p) {
            Some(Node::File { data, .. }) => String::from_utf8(data.clone()).unwrap(),
            other => panic!("{p}: {other:?}"),
        };
        assert!(text("etc/group").contains("\ndocker:x:233:\n"));
        assert!(!text("etc/passwd").contains("mallory"));
        assert!(text("etc/passwd").contains("\netcd:x:232:232:"));
        assert!(matches!(
            t.get("etc/shadow"),
            Some(Node::File { mode: 0o600, .. })
        ));
        assert_eq!(
            text("lib/modules/6.1.0-test/modules.dep"),
            "kernel/net/veth.ko:\n"
        );
        assert!(t.contains("lib/modules/6.1.0-test/kernel/net/veth.ko"));
        assert!(t.contains("lib/modules/6.1.0-test/modules.alias"));
        assert!(text("usr/lib/tmpfiles.d/etcd-server.conf")
            .ends_with("\nd /var/lib/etcd 0700 etcd etcd -\n"));
        assert!(matches!(
            t.get("usr/lib/tmpfiles.d/etcd-server.conf"),
            Some(Node::File { mode: 0o644, .. })
        ));
    }

    #[test]
    fn an_alternative_to_nothing_fails_the_build() {
        let mut files = engine_files();
        files.remove("usr/sbin/ebtables-nft-save");
        let msg = format!("{:#}", parts_tree(&files).unwrap_err());
        assert!(
            msg.contains(
                "/etc/alternatives/ebtables-save -> /usr/sbin/ebtables-nft-save points at nothing"
            ),
            "{msg}"
        );
        let mut files = engine_files();
        files.remove("usr/lib/systemd/system/docker.socket");
        let msg = format!("{:#}", parts_tree(&files).unwrap_err());
        assert!(msg.contains("sockets.target.wants/docker.socket"), "{msg}");
    }

    /// What `qemu-img map` calls holes reads as zeros: the disk's sum with
    /// them skipped is the sum of every byte.
    #[test]
    fn the_disk_sum_over_holes_is_the_plain_sum() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.raw");
        let mut f = File::create(&path).unwrap();
        f.set_len(64 << 20).unwrap();
        f.seek(SeekFrom::Start(3 << 20)).unwrap();
        f.write_all(&[1u8; 200_000]).unwrap();
        f.seek(SeekFrom::Start((64 << 20) - 512)).unwrap();
        f.write_all(&[2u8; 512]).unwrap();
        drop(f);
        let Some(holes) = holes(&path) else {
            eprintln!("SKIPPED: qemu-img map is not available");
            return;
        };
        assert!(
            holes.iter().map(|(_, n)| n).sum::<u64>() >= 60 << 20,
            "{holes:?}"
        );
        assert_eq!(
            sha256_sparse_file(&path, &holes).unwrap(),
            sha256_file(&path).unwrap()
        );
    }

    /// The qemu-x86_64 board's root modules from its real kernel, when a
    /// build has unpacked it: every `modules.dep` path is a file of the
    /// set, the modules dockerd and containerd name are there, and the
    /// aliases the kernel asks for resolve.
    #[test]
    fn the_qemu_boards_root_modules_resolve() {
        let board = Board::load(&paths::boards_dir(), "qemu-x86_64").unwrap();
        let lock = crate::board::lock_path(&paths::boards_dir(), "qemu-x86_64");
        let lock: toml::Value = toml::from_str(&std::fs::read_to_string(lock).unwrap()).unwrap();
        let kernel = lock["package"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["role"].as_str() == Some("kernel"))
            .unwrap();
        let root = paths::unpack_cache().join(format!(
            "{}_{}",
            kernel["package"].as_str().unwrap(),
            kernel["version"].as_str().unwrap()
        ));
        if !root.join(".slipway-unpacked").is_file() {
            eprintln!(
                "SKIPPED: {} not unpacked (build the image first)",
                root.display()
            );
            return;
        }
        let dir = std::fs::read_dir(root.join("lib/modules"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let k = slipway_initramfs::KernelModules::open(&dir).unwrap();
        let r = k.root_modules(&board.kernel.root_modules).unwrap();
        let files: std::collections::BTreeSet<&str> =
            r.files.iter().map(|(p, _)| p.as_str()).collect();
        let mut names = std::collections::BTreeSet::new();
        for line in r.modules_dep.lines() {
            let (module, deps) = line.split_once(':').unwrap();
            for path in std::iter::once(module).chain(deps.split_whitespace()) {
                assert!(files.contains(path), "{line}: {path} is not on the root");
            }
            let name = module.rsplit('/').next().unwrap().trim_end_matches(".ko");
            names.insert(name.replace('-', "_"));
        }
        assert_eq!(names.len(), files.len());
        for m in [
            "overlay",
            "bridge",
            "br_netfilter",
            "veth",
            "vxlan",
            "nf_nat",
            "nf_conntrack",
            "nf_conntrack_netlink",
            "xt_conntrack",
            "xt_addrtype",
            "xt_MASQUERADE",
            "nf_tables",
            "nft_compat",
            "nft_chain_nat",
            "ip_vs",
            "ip_vs_rr",
            "ip_vs_wrr",
            "ip_vs_sh",
            "esp4",
            "xfrm_user",
            "ip_tables",
            "iptable_nat",
        ] {
            assert!(names.contains(m), "{m} is not among the root's modules");
        }
        // What request_module asks for (iptables-nft's NAT chain, the
        // nfnetlink subsystem of nf_tables, the xt target by its ipt_ name).
        for (alias, module) in [
            ("nft-chain-2-nat", "nft_chain_nat"),
            ("nfnetlink-subsys-10", "nf_tables"),
            ("ipt_MASQUERADE", "xt_MASQUERADE"),
        ] {
            let line = format!("alias {alias} {module}\n");
            assert!(r.modules_alias.contains(&line), "no `{}`", line.trim());
        }
        // Deepest dependency last: br_netfilter's line ends with what
        // bridge needs, and bridge comes before it.
        let br = r
            .modules_dep
            .lines()
            .find(|l| l.starts_with("kernel/net/bridge/br_netfilter.ko:"))
            .unwrap();
        let deps: Vec<&str> = br.split_whitespace().skip(1).collect();
        let pos = |m: &str| deps.iter().position(|d| d.ends_with(m)).unwrap();
        assert!(
            pos("/bridge.ko") < pos("/stp.ko") && pos("/stp.ko") < pos("/llc.ko"),
            "{br}"
        );
    }
}
