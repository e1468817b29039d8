//! Writing a Slipway image to a disk, coreos-installer style: the library
//! behind `slipway-install` on the machine and `cargo xtask install` on a
//! build host.
//!
//! The order of the writes is the point (see [`install`]):
//!
//! 1. Every check first: the source's table, the user-data (validated with
//!    the cloud-config crate), the target (not the boot disk, not mounted or
//!    held, big enough, no partitions unless forced). A refusal writes
//!    nothing.
//! 2. The target's old partition tables are wiped (primary and backup), so a
//!    disk cut off from here on never looks bootable, not even as what it
//!    was before.
//! 3. The data, sparse: only the source's non-zero blocks are written (see
//!    [`copy`] for where zeros must still be made), then the NoCloud seed
//!    with the user-data; everything flushed.
//! 4. Last, the GPT (backup at the target's end, primary, protective MBR),
//!    flushed. Only now does the disk describe a bootable system.

pub mod bootdisk;
pub mod copy;
pub mod gpt_read;
pub mod progress;
pub mod refuse;
pub mod seed;
pub mod source;
pub mod table;
pub mod var_template;
pub mod written;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub use progress::Progress;
pub use refuse::Refusal;
pub use source::SourceSpec;

/// What to install where.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: SourceSpec,
    /// A block device or an image file (made, or grown, to fit).
    pub target: PathBuf,
    /// User-data for the installed system's first boot.
    pub user_data: Option<PathBuf>,
    /// Overwrite a target that has partitions.
    pub force: bool,
    /// Skip the SHA256SUMS check of a file or URL source.
    pub no_checksum: bool,
}

/// What an install did, for the closing line and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Bytes of the image laid out on the target (its partitions' extent).
    pub image_bytes: u64,
    /// Bytes of data written (non-zero blocks, the seed, the tables).
    pub written_bytes: u64,
    /// Bytes made zero by discard/zero-out or explicit zero writes.
    pub zeroed_bytes: u64,
    pub target_bytes: u64,
    pub elapsed: Duration,
}

/// Runs an install (the module doc gives the order).
pub fn install(opts: &Options, progress: &mut Progress) -> Result<Report> {
    let user_data = match &opts.user_data {
        Some(path) => Some(read_user_data(path)?),
        None => None,
    };
    let source = source::open(&opts.source, opts.no_checksum)?;
    install_from(source, user_data.as_deref(), opts, progress)
}

/// [`install`] from an opened source, with checked user-data (tests open a
/// disk image file as if it were the boot disk).
pub fn install_from(
    mut source: source::Source,
    user_data: Option<&[u8]>,
    opts: &Options,
    progress: &mut Progress,
) -> Result<Report> {
    let started = Instant::now();
    let plan = table::Plan::from_source(&source, user_data.is_some())?;
    let target_name = opts.target.display().to_string();
    let mut target = refuse::open_target(&opts.target, plan.min_target_bytes(), opts.force)?;
    let target_bytes = target.len;
    progress.start(&target_name, plan.copy_bytes(&source));

    let mut stats = copy::Stats::default();
    table::wipe(&mut target.file, target_bytes, &mut stats)
        .with_context(|| format!("{target_name}: wiping the old partition tables"))?;
    copy::copy_image(&mut source, &plan, &mut target.file, progress, &mut stats)
        .with_context(|| format!("{target_name}: writing the image"))?;
    if let Some(bytes) = user_data {
        let fs = seed::build(bytes)?;
        copy::write_all_at(&mut target.file, &fs, plan.seed_offset(), &mut stats)
            .with_context(|| format!("{target_name}: writing the user-data seed"))?;
    }
    target
        .file
        .sync_all()
        .with_context(|| format!("{target_name}: flushing the data"))?;
    table::write(&mut target.file, target_bytes, &plan, &mut stats)
        .with_context(|| format!("{target_name}: writing the partition table"))?;
    target
        .file
        .sync_all()
        .with_context(|| format!("{target_name}: flushing the partition table"))?;
    if target.is_block {
        refuse::reread_partitions(&target.file, &target_name);
    }
    progress.finish();
    Ok(Report {
        image_bytes: plan.image_bytes(),
        written_bytes: stats.written,
        zeroed_bytes: stats.zeroed,
        target_bytes,
        elapsed: started.elapsed(),
    })
}

/// Reads the user-data and refuses it, before anything is opened for
/// writing, if the validator finds an error (findings as `FILE:LINE:COL`).
pub fn read_user_data(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("{}: reading the user-data", path.display()))?;
    if bytes.len() > seed::MAX_USER_DATA {
        bail!(
            "{}: {} bytes of user-data, more than the {} the seed partition holds",
            path.display(),
            bytes.len(),
            seed::MAX_USER_DATA
        );
    }
    let report = cloud_config::validate(&bytes);
    if report.has_errors() {
        let text = report.render_text(&path.display().to_string());
        bail!(
            "{}: the user-data has errors, nothing was written:\n{}",
            path.display(),
            text.trim_end()
        );
    }
    Ok(bytes)
}

/// `1.5 GiB`-style sizes for messages.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Opens a file for reading with a message naming it.
pub(crate) fn open_read(path: &Path) -> Result<File> {
    File::open(path).with_context(|| format!("{}: opening", path.display()))
}
