//! Applying a payload to the passive slot, in the crash-safe order of
//! ARCHITECTURE.md, "Update order":
//!
//! 1. read and verify the manifest (signature, board, version and the
//!    version floor, sizes, the boot line as PID 1 will read it) before a
//!    single byte is written;
//! 2. remove the passive slot's boot entry: from here it cannot boot;
//! 3. stream the data, each chunk checked against the manifest before it is
//!    written, to the slot's root and verity partitions and (kernel,
//!    initramfs) to staging files on /var;
//! 4. fsync, drop the cached pages, re-read every chunk and compare it with
//!    the CRC32 of the bytes that passed the manifest's sha256;
//! 5. meanwhile, copy the kernel and initramfs to the ESP under temporary
//!    names, fsync, re-read each copy and compare it with its sha256 over
//!    its whole length, and rename it into place;
//! 6. when both are done, write the entry with `+3` tries (temporary name,
//!    fsync, rename).
//!
//! A power cut at any point leaves the active slot and its entry untouched
//! and the passive slot without an entry. The engine never opens the active
//! slot's partitions: the target is refused if it is the booted slot.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use slipway_boot_contract::cmdline::{BootArgs, CmdlineError, RootSpec, Verity, VerityArgs};
use slipway_image::bls;
use slipway_image::layout::Slot;
use thiserror::Error;
use uuid::Uuid;

use crate::delta::{self, index::Index, local::ActiveSlot, reader::Counters, Download};
use crate::esp::{with_path, EntryState, Esp};
use crate::feed::PayloadRef;
use crate::fetch::{self, FetchError, FetchOptions, Source};
use crate::hashing;
use crate::keys::TrustedKeys;
use crate::manifest::{Manifest, Part};
use crate::payload::{self, Header, PayloadError};

/// Tries a new entry gets before the loader falls back to the other slot.
pub const TRIES: u32 = 3;

/// The steps of an apply, in order. An observer sees each before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Verify,
    RemoveEntry,
    Write,
    ReadBack,
    InstallBootFiles,
    InstallEntry,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::Verify,
        Step::RemoveEntry,
        Step::Write,
        Step::ReadBack,
        Step::InstallBootFiles,
        Step::InstallEntry,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Verify => "verify",
            Step::RemoveEntry => "remove-entry",
            Step::Write => "write",
            Step::ReadBack => "read-back",
            Step::InstallBootFiles => "install-boot-files",
            Step::InstallEntry => "install-entry",
        }
    }
}

/// What the running system is.
#[derive(Debug, Clone)]
pub struct Running {
    pub slot: Slot,
    pub version: String,
    pub board: String,
}

/// The slot to write: its two partitions (block devices on a machine,
/// files in tests and the bench) and their GPT partition UUIDs.
#[derive(Debug, Clone)]
pub struct SlotTarget {
    pub slot: Slot,
    pub root: PathBuf,
    pub root_capacity: u64,
    pub root_partuuid: Uuid,
    pub verity: PathBuf,
    pub verity_capacity: u64,
    pub verity_partuuid: Uuid,
}

/// Where a previous, interrupted apply got to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ResumePoint {
    /// sha256 of the manifest bytes: the same release, byte for byte.
    pub manifest_sha256: String,
    pub slot: char,
    pub chunks_done: usize,
}

pub struct Request<'a> {
    pub source: &'a Source,
    /// From the feed: the payload must have this size and sha256.
    pub expect: Option<&'a PayloadRef>,
    pub running: &'a Running,
    pub target: &'a SlotTarget,
    pub esp: &'a Esp,
    pub keys: &'a TrustedKeys,
    pub allow_downgrade: bool,
    /// No release below this version, not even with `allow_downgrade`
    /// (`trust.rs`: the machine has run this one healthy).
    pub floor: Option<&'a str>,
    pub fetch: FetchOptions,
    pub resume: Option<ResumePoint>,
    /// Where the kernel and initramfs wait until step 5 (on the machine
    /// `/var/lib/slipway/update/staging`).
    pub staging: &'a std::path::Path,
    /// Try a delta download, reusing what this slot holds (needs `expect`,
    /// the payload's size from the feed).
    pub delta: Option<&'a ActiveSlot>,
}

/// Sees the apply's progress; returning an error from `step` aborts the
/// apply there (the daemon's stop request, and the tests' crash points).
pub trait Observer {
    fn step(&mut self, step: Step, detail: &str) -> Result<(), String>;
    /// `done` of `total` data bytes written; `resume` is the point to
    /// record so a re-run can continue.
    fn progress(&mut self, done: u64, total: u64, resume: &ResumePoint);
    /// A line for the person watching (how the download goes).
    fn say(&mut self, _text: &str) {}
}

#[derive(Debug)]
pub struct Outcome {
    pub version: String,
    pub slot: Slot,
    pub entry: String,
    pub data_bytes: u64,
    /// Chunks found already written and intact (a resumed apply).
    pub resumed_chunks: usize,
    pub write_time: Duration,
    pub total_time: Duration,
    /// How the data arrived (delta or whole, bytes over the network).
    pub download: Download,
}

#[derive(Debug, Error)]
pub enum ApplyError {
    #[error(
        "refusing to write slot {0}: it is the slot this system booted from (the active slot)"
    )]
    ActiveSlot(char),
    #[error(
        "the running slot {slot} is {state}, not yet marked good: an update now would \
         replace the only slot to fall back to (wait for the boot to turn healthy, or run \
         `update-engine mark-good`)"
    )]
    NotBlessed { slot: char, state: String },
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error("the payload's manifest has a boot line the init must not be given: {0}")]
    BootArgs(CmdlineError),
    #[error("payload is for board {found}, this machine is {want}")]
    WrongBoard { found: String, want: String },
    #[error(
        "payload version {new} is not newer than the running {running} \
         (a local file may pass --allow-downgrade)"
    )]
    NotNewer { new: String, running: String },
    #[error(
        "payload version {new} is below {floor}, a release this machine has already run \
         healthy: refused, even with --allow-downgrade (the record is \
         /var/lib/slipway/update/trust.json)"
    )]
    BelowFloor { new: String, floor: String },
    #[error("the feed announced {what} {want} but the payload has {found}")]
    FeedMismatch {
        what: &'static str,
        want: String,
        found: String,
    },
    #[error("the payload's {part} is {size} bytes but {target} holds only {capacity}")]
    TooLarge {
        part: &'static str,
        size: u64,
        capacity: u64,
        target: String,
    },
    #[error("re-reading {what} after writing: {why}")]
    ReadBack { what: String, why: String },
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("stopped before {step}: {why}")]
    Aborted { step: &'static str, why: String },
}

/// The four destinations of the data, with the part of the data each takes.
///
/// All are written through the page cache, with write-behind (see
/// [`Sinks::start_writeback`]). The partitions used to be written with
/// O_DIRECT, which an earlier bench had found faster. On the
/// same bench (`update-engine apply-files` of its 553.7 MB payload, ten
/// runs of each alternating, same machine, same hour), the write phase
/// (check, write, fsync) measured:
/// - O_DIRECT: 0.48-0.66 s, median 0.60 s;
/// - page cache with write-behind: 0.33-0.47 s, median 0.38 s, with about
///   the same kernel CPU time.
///
/// The likely reason is that a direct write of a 1 MiB chunk waits for the
/// device. Through the page cache, the writer goes on at once, and
/// writeback sends large requests from the cache's large folios, several
/// at a time. The re-read (step 4) goes through the page cache either way.
struct Sinks {
    files: Vec<Sink>,
}

struct Sink {
    file: File,
    /// Where the part starts in the data, and its size.
    start: u64,
    size: u64,
    name: String,
}

impl Sinks {
    fn open(req: &Request<'_>, m: &Manifest, resume: bool) -> io::Result<Sinks> {
        let t = req.target;
        let mut files = Vec::new();
        for (part, start, size) in m.offsets() {
            let (file, name) = match part {
                // Partitions: opened for writing in place, never truncated
                // (a block device cannot be, a slot file must keep its size).
                Part::Root | Part::Verity => {
                    let path = if part == Part::Root {
                        &t.root
                    } else {
                        &t.verity
                    };
                    let f = OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(path)
                        .map_err(|e| with_path(e, path))?;
                    (f, path.display().to_string())
                }
                // Kernel and initramfs wait in the staging folder (on /var,
                // journaled) until step 5: the ESP's FAT is written only in
                // that short step, not during the long download.
                Part::Kernel | Part::Initrd => {
                    std::fs::create_dir_all(req.staging).map_err(|e| with_path(e, req.staging))?;
                    let path = req.staging.join(part.name());
                    let f = OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(!resume)
                        .open(&path)
                        .map_err(|e| with_path(e, &path))?;
                    (f, path.display().to_string())
                }
            };
            files.push(Sink {
                file,
                start,
                size,
                name,
            });
        }
        Ok(Sinks { files })
    }

    /// Calls `f(file, offset in file, range of buf)` for each part `buf`
    /// (data bytes from `at`) touches.
    fn each(
        &self,
        at: u64,
        len: usize,
        mut f: impl FnMut(&File, u64, std::ops::Range<usize>, &str) -> io::Result<()>,
    ) -> io::Result<()> {
        let end = at + len as u64;
        for sink in &self.files {
            let (s, e) = (at.max(sink.start), end.min(sink.start + sink.size));
            if s < e {
                f(
                    &sink.file,
                    s - sink.start,
                    (s - at) as usize..(e - at) as usize,
                    &sink.name,
                )?;
            }
        }
        Ok(())
    }

    fn write(&self, at: u64, buf: &[u8]) -> io::Result<()> {
        self.each(at, buf.len(), |file, off, r, name| {
            file.write_all_at(&buf[r], off)
                .map_err(|e| io::Error::new(e.kind(), format!("writing {name}: {e}")))
        })
    }

    /// Reads through the page cache, whose readahead keeps large requests
    /// in flight: on the bench's disk that re-reads 1.8 times as fast as
    /// O_DIRECT reads of a chunk at a time. (Step 4 drops the cached pages
    /// first, so the bytes come from the medium.)
    fn read(&self, at: u64, buf: &mut [u8]) -> io::Result<()> {
        let len = buf.len();
        self.each(at, len, |file, off, r, _| file.read_exact_at(&mut buf[r], off))
    }

    /// Write-behind, after the chunk at `at` was written: `POSIX_FADV_DONTNEED`
    /// starts the writeback of its dirty pages without waiting for it, so
    /// the disk works while the next chunks are fetched and checked and the
    /// final fsync finds little left. The same advice on the bytes
    /// [`WRITE_BEHIND`] earlier, written back by now, drops those pages: the
    /// apply keeps about 16 MiB of the page cache, not the whole slot, and
    /// does not push the services' cached files out (under the writer's
    /// `memory.max` the kernel would otherwise reclaim them for it).
    fn start_writeback(&self, at: u64, len: usize) {
        self.advise_dontneed(at, len);
        self.forget_behind(at, len);
    }

    /// Drops the cached pages of the data [`WRITE_BEHIND`] before the chunk
    /// at `at`, done with by now (written back, or re-read). The range
    /// starts [`FOLIO`] earlier still: Linux drops only the folios wholly
    /// inside the range, and a large folio may straddle two chunks.
    fn forget_behind(&self, at: u64, len: usize) {
        if let Some(end) = (at + len as u64).checked_sub(WRITE_BEHIND) {
            let start = end.saturating_sub(len as u64 + FOLIO);
            self.advise_dontneed(start, (end - start) as usize);
        }
    }

    /// `POSIX_FADV_DONTNEED` on the data bytes `at..at + len` of every part
    /// they touch (see [`hashing::drop_cache`]).
    fn advise_dontneed(&self, at: u64, len: usize) {
        let _ = self.each(at, len, |file, off, r, _| {
            hashing::drop_cache(file, off, r.len() as u64);
            Ok(())
        });
    }

    /// Before the re-read of step 4: the parts' cached pages go, so the
    /// bytes come from the medium.
    fn drop_cache(&self) {
        for sink in &self.files {
            hashing::drop_cache(&sink.file, 0, sink.size);
        }
    }

    fn sync(&self) -> io::Result<()> {
        for sink in &self.files {
            sink.file
                .sync_all()
                .map_err(|e| io::Error::new(e.kind(), format!("fsync {}: {e}", sink.name)))?;
        }
        Ok(())
    }
}

fn esp_path(part: Part, slot: Slot) -> String {
    match part {
        Part::Kernel => bls::kernel_path(slot),
        _ => bls::initrd_path(slot),
    }
}

fn step(obs: &mut dyn Observer, s: Step, detail: &str) -> Result<(), ApplyError> {
    obs.step(s, detail).map_err(|why| ApplyError::Aborted {
        step: s.name(),
        why,
    })
}

/// Runs the whole apply. On error nothing bootable has changed except that
/// the passive slot has no entry (if step 2 was reached).
pub fn apply(req: &Request<'_>, obs: &mut dyn Observer) -> Result<Outcome, ApplyError> {
    let started = Instant::now();
    let t = req.target;
    if t.slot == req.running.slot {
        return Err(ApplyError::ActiveSlot(t.slot.letter()));
    }
    // The other slot is the fallback of a boot on trial: while the running
    // slot is not blessed, replacing it could leave nothing to fall back to.
    match req.esp.entry(req.running.slot)? {
        Some(e) if e.state == EntryState::Good => {}
        Some(e) => {
            return Err(ApplyError::NotBlessed {
                slot: req.running.slot.letter(),
                state: e.state.to_string(),
            })
        }
        None => {
            return Err(ApplyError::NotBlessed {
                slot: req.running.slot.letter(),
                state: "without a boot entry".into(),
            })
        }
    }

    // 1. The manifest, verified before anything is written. A delta reads
    // it with byte ranges, a whole download as the start of the stream.
    step(obs, Step::Verify, &req.source.describe())?;
    let counters = Counters::default();
    let mut fallback = None;
    let opened = match req.delta.zip(req.expect) {
        Some((_, e)) => match delta::open(req.source, e.size, &req.fetch, &counters) {
            Ok(o) => Some(o),
            Err(why) => {
                fallback = Some(why);
                None
            }
        },
        None => None,
    };
    let mut whole = Sha256::new();
    let (header, mut input) = match &opened {
        Some(o) => (o.header.clone(), None),
        None => {
            let mut input: Box<dyn Read + Send + '_> = Box::new(reader_counted(
                fetch::open(req.source, 0, req.expect.map(|e| e.size), &req.fetch)?,
                &counters,
            ));
            let mut tee = HashingReader {
                inner: &mut input,
                hasher: Some(&mut whole),
            };
            (payload::read_header(&mut tee)?, Some(input))
        }
    };
    header.verify(req.keys)?;
    let boot_args = check_release(req, &header)?;
    let m = &header.manifest;
    let manifest_sha256 = hex::encode(Sha256::digest(&header.manifest_bytes));
    let plan = match (opened, req.delta) {
        (Some(o), Some(slot)) => match plan_delta(o, slot, req.keys, m, &manifest_sha256, obs) {
            Ok(plan) => Some(plan),
            Err(why) => {
                fallback = Some(why);
                None
            }
        },
        _ => None,
    };
    if let Some(why) = &fallback {
        obs.say(&format!("delta: {why}: downloading the whole payload"));
    }

    // 2. The passive slot's entry goes first.
    step(obs, Step::RemoveEntry, &format!("slot {}", t.slot.letter()))?;
    req.esp.remove_entries(t.slot)?;

    // 3. The data.
    let resume = req
        .resume
        .as_ref()
        .filter(|r| r.manifest_sha256 == manifest_sha256 && r.slot == t.slot.letter());
    step(
        obs,
        Step::Write,
        &format!(
            "{} bytes to slot {}",
            m.data_size().unwrap_or(0),
            t.slot.letter()
        ),
    )?;
    let sinks = Sinks::open(req, m, resume.is_some())?;
    // CRC32 of every chunk as written, for the re-read of step 4.
    let mut crcs: Vec<Option<u32>> = vec![None; m.chunks.len()];
    let first = match resume {
        Some(r) => intact_prefix(&sinks, m, r.chunks_done, &mut crcs)?,
        None => 0,
    };
    let write_started = Instant::now();
    // From a feed, the whole payload must also be the one announced: its
    // sha256 is taken on the way (only when read whole from the start; a
    // delta's pieces are each checked against the signed manifest instead).
    let check_whole = req.expect.filter(|_| first == 0 && input.is_some());
    if first < m.chunks.len() {
        let (start, _) = m.chunk_range(first);
        let input: Box<dyn Read + Send + '_> = match (&plan, input.take()) {
            (Some((pieces, local, ranges)), _) => Box::new(delta::reader::DeltaReader::new(
                m,
                pieces,
                local,
                ranges,
                header.data_offset,
                &counters,
                first,
            )),
            (None, Some(input)) if first == 0 => input,
            // Continue the download where the intact data ends.
            (None, _) => Box::new(reader_counted(
                fetch::open(
                    req.source,
                    header.data_offset + start,
                    req.expect.map(|e| e.size),
                    &req.fetch,
                )?,
                &counters,
            )),
        };
        let tee = HashingReader {
            inner: input,
            hasher: check_whole.map(|_| &mut whole),
        };
        stream(
            tee,
            m,
            first,
            &sinks,
            &mut crcs,
            &manifest_sha256,
            t.slot,
            obs,
        )?;
    }
    if let Some(e) = check_whole {
        let got = hex::encode(whole.finalize());
        if got != e.sha256 {
            return Err(ApplyError::FeedMismatch {
                what: "sha256",
                want: e.sha256.clone(),
                found: got,
            });
        }
    }
    sinks.sync()?;
    let write_time = write_started.elapsed();

    // 4. Read everything back from the medium: every chunk must read back
    // as the bytes that passed the manifest's sha256 before they were
    // written. A CRC32 of each, kept while writing, is the comparison: it
    // catches a medium that did not keep the data at a fraction of the cost
    // of hashing everything with sha256 again (the signature's work was
    // done on the way in; dm-verity checks every block at boot as well).
    //
    // 5. The kernel and initramfs go to the ESP while the re-read runs:
    // only the entry, written last, makes the slot bootable, and the slot
    // has had none since step 2. Each copy is checked against the
    // manifest's sha256 itself, not the staged file it was copied from.
    // (Taken one after the other, the copies added about 35 ms, 5 %, to
    // the bench's apply.)
    step(obs, Step::ReadBack, "")?;
    sinks.drop_cache();
    std::thread::scope(|scope| {
        let reading = scope.spawn(|| read_back(&sinks, m, &crcs));
        let installed = step(obs, Step::InstallBootFiles, "").and_then(|()| {
            [Part::Kernel, Part::Initrd]
                .into_iter()
                .try_for_each(|part| install_boot_file(req, m, part))
        });
        let read = reading
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the re-reading thread panicked").into()));
        // A medium that lost data is the error to report, whatever else
        // failed meanwhile.
        read.and(installed)
    })?;
    drop(sinks);

    // 6. The entry.
    step(obs, Step::InstallEntry, "")?;
    let entry = bls::Entry {
        os_name: m.os_name.clone(),
        version: m.version.clone(),
        slot: t.slot,
        options: boot_args.render(&m.cmdline).map_err(ApplyError::BootArgs)?,
    };
    let name = req.esp.install_entry(&entry, TRIES)?;
    Ok(Outcome {
        version: m.version.clone(),
        slot: t.slot,
        entry: name,
        data_bytes: m.data_size().unwrap_or(0),
        resumed_chunks: first,
        write_time,
        total_time: started.elapsed(),
        download: {
            let mut d = Download::from_counters(&counters);
            d.payload = header.data_offset + m.data_size().unwrap_or(0);
            d.fallback = fallback;
            match &plan {
                Some((_, local, _)) => {
                    d.mode = "delta".into();
                    d.reused_from = req.delta.map(|s| s.name.clone());
                    d.scanned_bytes = local.scanned_bytes;
                    d.scan_ms = local.scan_time.as_millis() as u64;
                }
                None => d.mode = "full".into(),
            }
            d
        },
    })
}

/// What a delta needs to run: the index's pieces, the active slot cut into
/// pieces, the payload's byte ranges.
type DeltaPlan = (Vec<delta::index::Piece>, delta::local::Local, fetch::Ranges);

/// Checks the index (signed, for this very manifest), then cuts the active
/// slot into pieces to see what need not be downloaded. `Err`: why the
/// whole payload comes instead.
fn plan_delta(
    opened: delta::Opened,
    slot: &ActiveSlot,
    keys: &TrustedKeys,
    m: &Manifest,
    manifest_sha256: &str,
    obs: &mut dyn Observer,
) -> Result<DeltaPlan, String> {
    let index = Index::verify(&opened.index, keys, m, manifest_sha256)
        .map_err(|e| format!("delta index refused: {e}"))?;
    obs.say(&format!(
        "delta: looking for pieces of {} in {}",
        m.version, slot.name
    ));
    let mut skipped = Vec::new();
    let local = delta::local::scan(slot, &index.chunking, &mut skipped);
    for s in skipped {
        obs.say(&format!("delta: not reused: {s}"));
    }
    let pieces = index.pieces();
    let have: u64 = pieces
        .iter()
        .filter(|p| local.find(&p.sha256).is_some())
        .map(|p| u64::from(p.len))
        .sum();
    let data = m.data_size().unwrap_or(0);
    obs.say(&format!(
        "delta: {} of {} are on this machine ({} pieces scanned in {:.1} s); downloading about {}",
        crate::human::mib(have),
        crate::human::mib(data),
        local.len(),
        local.scan_time.as_secs_f64(),
        crate::human::mib(data.saturating_sub(have)),
    ));
    Ok((pieces, local, opened.ranges))
}

/// Counts the bytes a whole download reads, for the status.
fn reader_counted<'c>(
    inner: Box<dyn Read + Send>,
    counters: &'c Counters,
) -> delta::reader::Counting<'c, Box<dyn Read + Send>> {
    delta::reader::Counting {
        inner,
        counter: &counters.downloaded,
    }
}

/// Copies a staged kernel or initramfs to the ESP under a temporary name,
/// fsyncs it, checks the copy as the medium has it, and renames it into
/// place.
fn install_boot_file(req: &Request<'_>, m: &Manifest, part: Part) -> Result<(), ApplyError> {
    let esp_file = esp_path(part, req.target.slot);
    let from = req.staging.join(part.name());
    let (mut out, staged) = req.esp.staged(&esp_file, true)?;
    let mut src = File::open(&from).map_err(|e| with_path(e, &from))?;
    io::copy(&mut src, &mut out).map_err(|e| with_path(e, &staged))?;
    out.sync_all().map_err(|e| with_path(e, &staged))?;
    let size = m.artifact(part).size;
    // The whole copy is what boots: not a byte more than the manifest's
    // size may follow the bytes that are checked.
    let len = out.metadata().map_err(|e| with_path(e, &staged))?.len();
    if len != size {
        return Err(ApplyError::ReadBack {
            what: staged.display().to_string(),
            why: format!("the copy on the ESP is {len} bytes, the manifest says {size}"),
        });
    }
    let got = hashing::sha256_range_uncached(&out, 0, size).map_err(|e| ApplyError::ReadBack {
        what: staged.display().to_string(),
        why: e.to_string(),
    })?;
    if got != m.artifact(part).sha256 {
        return Err(ApplyError::ReadBack {
            what: staged.display().to_string(),
            why: format!("the copy on the ESP has sha256 {got}"),
        });
    }
    drop(out);
    req.esp.commit(&esp_file)?;
    let _ = std::fs::remove_file(&from);
    Ok(())
}

/// Checks that the release fits this machine before anything is written,
/// and returns the slot arguments its boot entry will carry: checked now,
/// as the init will check them, so a manifest whose verity parameters the
/// init would refuse is never written (and never boots on trial).
fn check_release(req: &Request<'_>, h: &Header) -> Result<BootArgs, ApplyError> {
    let m = &h.manifest;
    if m.board != req.running.board {
        return Err(ApplyError::WrongBoard {
            found: m.board.clone(),
            want: req.running.board.clone(),
        });
    }
    if !req.allow_downgrade
        && crate::version::compare(&m.version, &req.running.version) != std::cmp::Ordering::Greater
    {
        return Err(ApplyError::NotNewer {
            new: m.version.clone(),
            running: req.running.version.clone(),
        });
    }
    if let Some(floor) = req.floor {
        if crate::version::compare(&m.version, floor) == std::cmp::Ordering::Less {
            return Err(ApplyError::BelowFloor {
                new: m.version.clone(),
                floor: floor.to_string(),
            });
        }
    }
    if let Some(e) = req.expect {
        let size = h.data_offset + m.data_size().unwrap_or(0);
        if size != e.size {
            return Err(ApplyError::FeedMismatch {
                what: "size",
                want: e.size.to_string(),
                found: size.to_string(),
            });
        }
    }
    let t = req.target;
    for (part, capacity, target) in [
        (Part::Root, t.root_capacity, &t.root),
        (Part::Verity, t.verity_capacity, &t.verity),
    ] {
        let size = m.artifact(part).size;
        if size > capacity {
            return Err(ApplyError::TooLarge {
                part: part.name(),
                size,
                capacity,
                target: target.display().to_string(),
            });
        }
    }
    // The ESP must hold the new kernel and initramfs next to the old ones
    // (staged copies exist until the rename).
    let boot = m.artifact(Part::Kernel).size + m.artifact(Part::Initrd).size;
    let free = req.esp.free_bytes()?;
    if boot > free {
        return Err(ApplyError::TooLarge {
            part: "kernel and initramfs",
            size: boot,
            capacity: free,
            target: format!("the ESP ({} free)", req.esp.root().display()),
        });
    }
    let verity = VerityArgs::new(
        &m.verity.root_hash,
        t.verity_partuuid,
        &m.verity.salt,
        m.verity.data_blocks,
    )
    .map_err(ApplyError::BootArgs)?;
    Ok(BootArgs {
        slot: t.slot,
        root: RootSpec::PartUuid(t.root_partuuid),
        verity: Verity::On(verity),
    })
}

/// How many of the first `claimed` chunks are on the target intact (their
/// CRC32 go into `crcs`).
fn intact_prefix(
    sinks: &Sinks,
    m: &Manifest,
    claimed: usize,
    crcs: &mut [Option<u32>],
) -> Result<usize, ApplyError> {
    let mut buf = Vec::new();
    let n = claimed.min(m.chunks.len());
    for (i, crc) in crcs.iter_mut().enumerate().take(n) {
        let (s, e) = m.chunk_range(i);
        buf.resize((e - s) as usize, 0);
        let ok =
            sinks.read(s, &mut buf).is_ok() && hex::encode(Sha256::digest(&buf)) == m.chunks[i];
        if !ok {
            return Ok(i);
        }
        *crc = Some(crc32fast::hash(&buf));
    }
    Ok(n)
}

/// Threads that check chunks against the manifest and write them, and that
/// re-read them in step 4. sha256 is the costliest work of an apply (about
/// 1.4 GB/s a core with SHA-NI, slower than the disks it writes to), so it
/// runs on two cores; the slot's machines have at least two.
const WORKERS: usize = 2;
/// Chunk buffers in flight, in bytes: enough that neither the reading nor
/// the writing threads wait on each other's jitter, bounded whatever the
/// payload's size.
const BUFFER_BYTES: usize = 8 << 20;
/// How far behind the newest chunk written the write-behind drops the
/// cached pages of the data (see [`Sinks::start_writeback`]).
const WRITE_BEHIND: u64 = 16 << 20;
/// The largest folio the page cache holds a file's data in: 2 MiB (a
/// PMD's worth on x86-64).
const FOLIO: u64 = 2 << 20;
/// At least this many buffers however large the chunks (one being read,
/// one checked, one written), as many as before the checkers ran in
/// parallel: large chunks get less overlap, not more memory.
const MIN_BUFFERS: usize = 3;

/// A chunk read from the input, not yet checked.
struct Job {
    i: usize,
    start: u64,
    buf: Vec<u8>,
}

/// A chunk checked against the manifest, to be written.
struct Checked {
    i: usize,
    start: u64,
    crc: u32,
    buf: Vec<u8>,
}

/// The answer for a chunk: its CRC32 once checked and written, `None` if
/// it was skipped because the apply is failing.
struct Done {
    i: usize,
    result: Result<Option<u32>, ApplyError>,
    buf: Vec<u8>,
}

/// Streams verified chunks from `input` into `sinks`. This thread reads
/// the chunks in order; [`WORKERS`] checkers check each against the
/// manifest's sha256, and only then does the writer write it. Progress (the
/// resume point) only ever covers the chunks before the first one not yet
/// written. A fixed set of buffers bounds the memory whatever the payload's
/// size.
#[allow(clippy::too_many_arguments)]
fn stream(
    mut input: impl Read + Send,
    m: &Manifest,
    first: usize,
    sinks: &Sinks,
    crcs: &mut [Option<u32>],
    manifest_sha256: &str,
    slot: Slot,
    obs: &mut dyn Observer,
) -> Result<(), ApplyError> {
    let chunk = m.chunk_size as usize;
    let spare: Vec<Vec<u8>> = (0..(BUFFER_BYTES / chunk).max(MIN_BUFFERS))
        .map(|_| vec![0; chunk])
        .collect();
    let mut tally = Tally {
        m,
        crcs,
        prefix: first,
        manifest_sha256,
        slot,
        obs,
    };
    let stop = AtomicBool::new(false);
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let (write_tx, write_rx) = mpsc::channel::<Checked>();
    let job_rx = Mutex::new(job_rx);
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            let (write_tx, done_tx) = (write_tx.clone(), done_tx.clone());
            let (job_rx, stop) = (&job_rx, &stop);
            scope.spawn(move || check(m, job_rx, &write_tx, &done_tx, stop));
        }
        {
            let (done_tx, stop) = (done_tx.clone(), &stop);
            scope.spawn(move || write(sinks, write_rx, &done_tx, stop));
        }
        // The writer ends when the checkers do.
        drop(write_tx);
        drop(done_tx);
        let result = feed(
            &mut input, m, first, spare, &job_tx, &done_rx, &mut tally, &stop,
        );
        // Ends the workers' loops.
        drop(job_tx);
        result
    })
}

/// [`stream`]'s reading thread: reads the chunks into free buffers and
/// hands them to the checkers, records each chunk written, until all are
/// or one failed. After the input fails the threads still finish the
/// chunks they were handed (they are good, and the resume point may cover
/// them); after a bad chunk they skip the rest. The failure returned is the
/// first by chunk index: a bad chunk is named, not a later one a thread
/// happened to finish first.
#[allow(clippy::too_many_arguments)]
fn feed(
    input: &mut impl Read,
    m: &Manifest,
    first: usize,
    mut spare: Vec<Vec<u8>>,
    jobs: &mpsc::Sender<Job>,
    done: &mpsc::Receiver<Done>,
    tally: &mut Tally<'_, '_>,
    stop: &AtomicBool,
) -> Result<(), ApplyError> {
    let mut failed: Option<(usize, ApplyError)> = None;
    let (mut next, mut in_flight) = (first, 0usize);
    loop {
        if failed.is_none() && next < m.chunks.len() {
            if let Some(mut buf) = spare.pop() {
                let (start, end) = m.chunk_range(next);
                buf.resize((end - start) as usize, 0);
                match payload::read_chunk(input, m, next, &mut buf) {
                    Ok(()) => {
                        // Fails only if the threads all panicked, seen below.
                        let _ = jobs.send(Job {
                            i: next,
                            start,
                            buf,
                        });
                        in_flight += 1;
                        next += 1;
                    }
                    Err(e) => keep_first(&mut failed, next, e.into()),
                }
                continue;
            }
        }
        if in_flight == 0 {
            break;
        }
        let Ok(d) = done.recv() else {
            let e = io::Error::other("the chunk checking and writing threads died");
            keep_first(&mut failed, next, e.into());
            break;
        };
        in_flight -= 1;
        match d.result {
            Ok(Some(crc)) => tally.record(d.i, crc),
            Ok(None) => {}
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                keep_first(&mut failed, d.i, e);
            }
        }
        spare.push(d.buf);
    }
    match failed {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

/// Keeps the failure of the lowest chunk index.
fn keep_first(failed: &mut Option<(usize, ApplyError)>, i: usize, e: ApplyError) {
    if failed.as_ref().is_none_or(|(j, _)| i < *j) {
        *failed = Some((i, e));
    }
}

/// A checker of [`stream`]: checks each chunk it is handed against the
/// manifest and passes it on to the writer with its CRC32; a bad chunk goes
/// back to the reading thread as a failure, never to the writer.
fn check(
    m: &Manifest,
    jobs: &Mutex<mpsc::Receiver<Job>>,
    to_write: &mpsc::Sender<Checked>,
    done: &mpsc::Sender<Done>,
    stop: &AtomicBool,
) {
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => break,
        };
        let Ok(Job { i, start, buf }) = job else {
            break;
        };
        let result = if stop.load(Ordering::Relaxed) {
            Ok(None)
        } else {
            payload::check_chunk(m, i, &buf).map(|()| Some(crc32fast::hash(&buf)))
        };
        let sent = match result {
            Ok(Some(crc)) => to_write
                .send(Checked { i, start, crc, buf })
                .map_err(|_| ()),
            Ok(None) => done
                .send(Done {
                    i,
                    result: Ok(None),
                    buf,
                })
                .map_err(|_| ()),
            Err(e) => done
                .send(Done {
                    i,
                    result: Err(e.into()),
                    buf,
                })
                .map_err(|_| ()),
        };
        if sent.is_err() {
            break;
        }
    }
}

/// The writer of [`stream`]: one thread, so the checkers hash while a
/// write is in flight and the disk sees one sequential stream.
fn write(
    sinks: &Sinks,
    checked: mpsc::Receiver<Checked>,
    done: &mpsc::Sender<Done>,
    stop: &AtomicBool,
) {
    for Checked { i, start, crc, buf } in checked {
        let result = if stop.load(Ordering::Relaxed) {
            Ok(None)
        } else {
            let data = &buf[..];
            sinks.write(start, data).map(|()| {
                sinks.start_writeback(start, data.len());
                Some(crc)
            })
        };
        let result = result.map_err(ApplyError::Io);
        if done.send(Done { i, result, buf }).is_err() {
            break;
        }
    }
}

/// The chunks written so far, for step 4's CRC32s and the resume point.
struct Tally<'a, 'o> {
    m: &'a Manifest,
    /// `Some` for every chunk written (or found intact when resuming).
    crcs: &'a mut [Option<u32>],
    /// Chunks before this index are all written.
    prefix: usize,
    manifest_sha256: &'a str,
    slot: Slot,
    obs: &'a mut (dyn Observer + 'o),
}

impl Tally<'_, '_> {
    fn record(&mut self, i: usize, crc: u32) {
        if let Some(c) = self.crcs.get_mut(i) {
            *c = Some(crc);
        }
        let before = self.prefix;
        while self.crcs.get(self.prefix).is_some_and(Option::is_some) {
            self.prefix += 1;
        }
        if self.prefix > before {
            let (_, done) = self.m.chunk_range(self.prefix - 1);
            self.obs.progress(
                done,
                self.m.data_size().unwrap_or(0),
                &ResumePoint {
                    manifest_sha256: self.manifest_sha256.to_string(),
                    slot: self.slot.letter(),
                    chunks_done: self.prefix,
                },
            );
        }
    }
}

/// Step 4's comparison: every chunk, re-read from the medium (its cached
/// pages dropped before), must have the CRC32 it had when written. The
/// workers take every other chunk, so one's copying and CRC overlap the
/// other's wait for the disk. On failure the first bad chunk is named.
fn read_back(sinks: &Sinks, m: &Manifest, crcs: &[Option<u32>]) -> Result<(), ApplyError> {
    let stop = AtomicBool::new(false);
    let failures: Vec<(usize, ApplyError)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|k| {
                let stop = &stop;
                scope.spawn(move || read_back_every(sinks, m, crcs, k, stop))
            })
            .collect();
        workers
            .into_iter()
            .filter_map(|w| match w.join() {
                Ok(r) => r.err(),
                Err(_) => Some((0, io::Error::other("a read-back thread panicked").into())),
            })
            .collect()
    });
    match failures.into_iter().min_by_key(|(i, _)| *i) {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

/// Re-reads chunks `k`, `k + WORKERS`, … (see [`read_back`]).
fn read_back_every(
    sinks: &Sinks,
    m: &Manifest,
    crcs: &[Option<u32>],
    k: usize,
    stop: &AtomicBool,
) -> Result<(), (usize, ApplyError)> {
    let mut buf = vec![0; m.chunk_size as usize];
    for (i, crc) in crcs.iter().enumerate().skip(k).step_by(WORKERS) {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let (s, e) = m.chunk_range(i);
        buf.resize((e - s) as usize, 0);
        let data = &mut buf[..];
        let read = sinks.read(s, data);
        let got = read.as_ref().ok().map(|()| crc32fast::hash(data));
        // The re-read keeps the page cache as small as the writes do.
        sinks.forget_behind(s, data.len());
        if got.is_none() || got != *crc {
            stop.store(true, Ordering::Relaxed);
            let err = ApplyError::ReadBack {
                what: format!("chunk {i} (data bytes {s}..{e})"),
                why: match read {
                    Err(err) => err.to_string(),
                    Ok(()) => "it reads back differently from what was written: the medium \
                               did not keep it"
                        .into(),
                },
            };
            return Err((i, err));
        }
    }
    Ok(())
}

/// Hashes what passes through, for the feed's whole-payload sha256.
struct HashingReader<'h, R> {
    inner: R,
    /// `None`: pass the bytes through only.
    hasher: Option<&'h mut Sha256>,
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::tests::{parts, release};

    #[derive(Default)]
    struct Seen(Vec<(u64, usize)>);

    impl Observer for Seen {
        fn step(&mut self, _: Step, _: &str) -> Result<(), String> {
            Ok(())
        }
        fn progress(&mut self, done: u64, _: u64, r: &ResumePoint) {
            self.0.push((done, r.chunks_done));
        }
    }

    /// Chunks finish out of order; the resume point only ever covers an
    /// unbroken run from the start.
    #[test]
    fn progress_covers_only_the_chunks_before_the_first_unwritten() {
        let p = parts();
        let refs = [&p[0][..], &p[1][..], &p[2][..], &p[3][..]];
        let m = payload::manifest_for(&release("2.0", &p[0]), refs).unwrap();
        let mut crcs = vec![None; m.chunks.len()];
        crcs[0] = Some(7); // found intact by a resume
        let mut seen = Seen::default();
        let mut tally = Tally {
            m: &m,
            crcs: &mut crcs,
            prefix: 1,
            manifest_sha256: "x",
            slot: Slot::B,
            obs: &mut seen,
        };
        assert_eq!(m.chunks.len(), 4);
        tally.record(2, 1);
        tally.record(1, 1);
        tally.record(3, 1);
        let end = |i| m.chunk_range(i).1;
        assert_eq!(seen.0, vec![(end(2), 3), (end(3), 4)]);
    }
}
