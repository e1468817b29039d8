//! Debian binary packages (`.deb`): the control paragraph and the data
//! archive, read without `dpkg` so the builder runs on any host.
//!
//! A `.deb` is an `ar` archive holding `debian-binary`, `control.tar.*` and
//! `data.tar.*`, each tar compressed with xz, zstd, gzip or not at all.
//! Members are streamed: nothing is decompressed to memory or to a
//! temporary file.

mod control;
mod unpack;

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::{Path, PathBuf};

pub use control::Control;
pub use unpack::ExtractSummary;

#[derive(Debug, thiserror::Error)]
pub enum DebError {
    #[error("{} is not a debian package (not an ar archive)", .deb.display())]
    NotAr { deb: PathBuf },
    #[error("{} has no {member} member", .deb.display())]
    MissingMember { deb: PathBuf, member: &'static str },
    #[error("{}: member `{member}` uses an unsupported compression", .deb.display())]
    UnsupportedCompression { deb: PathBuf, member: String },
    #[error("{}: control.tar holds no ./control file", .deb.display())]
    MissingControlFile { deb: PathBuf },
    #[error("{}: control file line {line}: {reason}", .deb.display())]
    BadControl {
        deb: PathBuf,
        line: usize,
        reason: &'static str,
    },
    #[error("{}: control file has no `{field}` field", .deb.display())]
    MissingField { deb: PathBuf, field: &'static str },
    #[error("{}: refusing archive entry `{}`: {reason}", .deb.display(), .entry.display())]
    UnsafePath {
        deb: PathBuf,
        entry: PathBuf,
        reason: &'static str,
    },
    #[error("{action} {}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// Reads the package's control paragraph (`./control` in `control.tar.*`).
pub fn control(deb: &Path) -> Result<Control, DebError> {
    with_member(deb, "control.tar", |reader| {
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries().map_err(read_error(deb))?;
        for entry in entries {
            let mut entry = entry.map_err(read_error(deb))?;
            let path = entry.path().map_err(read_error(deb))?;
            if unpack::archive_relative(&path).is_ok_and(|p| p == Path::new("control")) {
                let mut text = String::new();
                entry.read_to_string(&mut text).map_err(read_error(deb))?;
                return control::parse(deb, &text);
            }
        }
        Err(DebError::MissingControlFile {
            deb: deb.to_path_buf(),
        })
    })
}

/// Unpacks the package's `data.tar.*` into `dest`, creating it if needed.
///
/// Regular files, directories, symlinks and hard links are created with the
/// archive's permission bits; owners and times are not applied (the image
/// writers set both). Device nodes and FIFOs are skipped and listed in the
/// summary. An entry that would land outside `dest` (`..`, an absolute path,
/// or a path through a symlink) stops the extraction with
/// [`DebError::UnsafePath`]. Existing files are replaced, so several
/// packages can be unpacked into one root.
pub fn extract(deb: &Path, dest: &Path) -> Result<ExtractSummary, DebError> {
    with_member(deb, "data.tar", |reader| unpack::unpack(deb, reader, dest))
}

/// Finds the member `<prefix>` or `<prefix>.<compression>` and hands its
/// decompressed bytes to `f`.
fn with_member<T>(
    deb: &Path,
    prefix: &'static str,
    f: impl FnOnce(&mut dyn Read) -> Result<T, DebError>,
) -> Result<T, DebError> {
    let mut file = File::open(deb).map_err(|source| DebError::Io {
        action: "opening",
        path: deb.to_path_buf(),
        source,
    })?;
    check_ar_magic(deb, &mut file)?;
    // Large buffer: the kernel's data member is tens of megabytes and is
    // read straight through.
    let mut archive = ar::Archive::new(BufReader::with_capacity(1 << 20, file));
    while let Some(member) = archive.next_entry() {
        let member = member.map_err(read_error(deb))?;
        let name = member_name(member.header().identifier());
        let Some(suffix) = name.strip_prefix(prefix) else {
            continue;
        };
        let mut reader = decompressor(suffix, member)
            .ok_or_else(|| DebError::UnsupportedCompression {
                deb: deb.to_path_buf(),
                member: name.clone(),
            })?
            .map_err(read_error(deb))?;
        return f(&mut reader);
    }
    Err(DebError::MissingMember {
        deb: deb.to_path_buf(),
        member: prefix,
    })
}

/// The `ar` crate reports a bad magic as a generic I/O error; checking it
/// here gives the caller a precise [`DebError::NotAr`].
fn check_ar_magic(deb: &Path, file: &mut File) -> Result<(), DebError> {
    let mut magic = [0u8; 8];
    match file.read_exact(&mut magic) {
        Ok(()) if &magic == b"!<arch>\n" => {}
        Ok(()) => return Err(not_ar(deb)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(not_ar(deb)),
        Err(e) => return Err(read_error(deb)(e)),
    }
    file.rewind().map_err(read_error(deb))
}

fn not_ar(deb: &Path) -> DebError {
    DebError::NotAr {
        deb: deb.to_path_buf(),
    }
}

/// Member names are space-padded, and GNU ar ends them with `/`.
fn member_name(identifier: &[u8]) -> String {
    String::from_utf8_lossy(identifier)
        .trim_end()
        .trim_end_matches('/')
        .to_string()
}

/// `None` when the compression is not one dpkg writes today.
fn decompressor<'a>(
    suffix: &str,
    member: impl Read + 'a,
) -> Option<io::Result<Box<dyn Read + 'a>>> {
    let reader: io::Result<Box<dyn Read + 'a>> = match suffix {
        "" => Ok(Box::new(member)),
        ".xz" => xz_decoder(member).map(|r| Box::new(r) as Box<dyn Read + 'a>),
        ".zst" => zstd::Decoder::new(member).map(|r| Box::new(r) as Box<dyn Read + 'a>),
        ".gz" => Ok(Box::new(flate2::read::GzDecoder::new(member))),
        _ => return None,
    };
    Some(reader)
}

/// dpkg writes xz members in independent blocks; liblzma's multi-threaded
/// decoder decodes them in parallel (1.2 s -> 0.75 s to unpack the kernel
/// package on two cores). A single-block stream decodes on one thread as before.
fn xz_decoder<'a>(member: impl Read + 'a) -> io::Result<impl Read + 'a> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let stream = liblzma::stream::MtStreamBuilder::new()
        .threads(threads as u32)
        // Beyond this the decoder falls back to one thread instead of
        // failing; a zero limit (the builder's default) would always do so.
        .memlimit_threading(1 << 30)
        .memlimit_stop(u64::MAX)
        .decoder()
        .map_err(io::Error::other)?;
    Ok(liblzma::read::XzDecoder::new_stream(member, stream))
}

fn read_error(deb: &Path) -> impl Fn(io::Error) -> DebError + '_ {
    move |source| DebError::Io {
        action: "reading",
        path: deb.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests;
