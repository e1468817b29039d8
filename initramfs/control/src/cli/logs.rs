//! Reading units' log files: the tail across rotation, and following.
//!
//! The service manager writes `<unit>.log`; when it is full it is renamed
//! to `<unit>.log.1` (replacing the older one) and a new `<unit>.log` is
//! begun.

use std::ffi::OsString;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use slipway_control::{log_path, previous_log_path};

/// How often `follow` looks for new lines and rotations.
pub const POLL: Duration = Duration::from_millis(250);

/// A unit's two log files.
#[derive(Debug, Clone)]
pub struct LogFiles {
    pub current: PathBuf,
    pub previous: PathBuf,
}

impl LogFiles {
    pub fn new(dir: &Path, unit: &str) -> LogFiles {
        LogFiles {
            current: log_path(dir, unit),
            previous: previous_log_path(dir, unit),
        }
    }

    /// From the current file's path (as the service manager reports it).
    pub fn for_current(current: PathBuf) -> LogFiles {
        let mut previous = OsString::from(current.as_os_str());
        previous.push(".1");
        LogFiles {
            current,
            previous: PathBuf::from(previous),
        }
    }
}

#[derive(Debug)]
pub enum LogError {
    /// Neither file exists.
    Missing(PathBuf),
    Read(PathBuf, io::Error),
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Missing(path) => write!(
                f,
                "no log: {} does not exist (has the unit run on this boot? is the name right?)",
                path.display()
            ),
            LogError::Read(path, e) => write!(f, "cannot read {}: {e}", path.display()),
        }
    }
}

/// The last lines of a log, and where following goes on.
#[derive(Debug)]
pub struct Tail {
    /// Without their `\n`.
    pub lines: Vec<Vec<u8>>,
    /// The open current file and the offset up to which it was shown
    /// (`None` if the current file does not exist yet).
    pub position: Option<(File, u64)>,
}

impl Tail {
    pub fn write_all(&self, out: &mut impl Write) -> io::Result<()> {
        for line in &self.lines {
            out.write_all(line)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }
}

/// The last `n` lines across `<unit>.log.1` then `<unit>.log`.
pub fn tail(files: &LogFiles, n: usize) -> Result<Tail, LogError> {
    tail_for_follow(files, n, false)
}

/// Like [`tail`]; when `follow`ing, a last line without its `\n` (still
/// being written) is left to [`follow`] to print as it grows.
pub fn tail_for_follow(files: &LogFiles, n: usize, follow: bool) -> Result<Tail, LogError> {
    let read_err = |path: &Path| {
        let path = path.to_owned();
        move |e| LogError::Read(path, e)
    };
    let current = open_if_exists(&files.current).map_err(read_err(&files.current))?;
    let mut lines = Vec::new();
    let mut position = None;
    if let Some(mut file) = current {
        let end = file.metadata().map_err(read_err(&files.current))?.len();
        let (last, complete_end) =
            last_lines(&mut file, end, n).map_err(read_err(&files.current))?;
        lines = last;
        if follow && complete_end < end {
            lines.pop();
        }
        position = Some((file, if follow { complete_end } else { end }));
    }
    if lines.len() < n {
        match open_if_exists(&files.previous).map_err(read_err(&files.previous))? {
            Some(mut file) => {
                let end = file.metadata().map_err(read_err(&files.previous))?.len();
                let (mut older, _) = last_lines(&mut file, end, n - lines.len())
                    .map_err(read_err(&files.previous))?;
                older.append(&mut lines);
                lines = older;
            }
            None if position.is_none() => return Err(LogError::Missing(files.current.clone())),
            None => {}
        }
    }
    Ok(Tail { lines, position })
}

fn open_if_exists(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The last `n` lines of the first `end` bytes of `file`, read backwards
/// in chunks, and the offset where the last complete line ends (`end` if
/// the text ends with `\n`).
fn last_lines(file: &mut File, end: u64, n: usize) -> io::Result<(Vec<Vec<u8>>, u64)> {
    const CHUNK: u64 = 64 * 1024;
    if n == 0 || end == 0 {
        return Ok((Vec::new(), end));
    }
    let mut data: Vec<u8> = Vec::new();
    let mut start = end;
    loop {
        // Newlines before the text's final one separate whole lines.
        let body = data.strip_suffix(b"\n").unwrap_or(&data);
        let separators = body.iter().filter(|&&b| b == b'\n').count();
        if start == 0 || separators >= n {
            break;
        }
        let from = start.saturating_sub(CHUNK);
        let mut chunk = vec![0; (start - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&data);
        data = chunk;
        start = from;
    }
    let ends_complete = data.ends_with(b"\n");
    let body = data.strip_suffix(b"\n").unwrap_or(&data);
    let pieces: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    let partial_len = if ends_complete {
        0
    } else {
        pieces.last().map_or(0, |p| p.len() as u64)
    };
    // Unless the read reached the file's start, the first piece may be cut.
    let skip = pieces.len().saturating_sub(n);
    let lines = pieces[skip..].iter().map(|p| p.to_vec()).collect();
    Ok((lines, end - partial_len))
}

/// Prints what is appended to the current log from `position` on, until
/// `stop()` says so. When the file is replaced (rotation: another inode
/// at the path) the rest of the old one is printed, then the new one from
/// its start; when it shrinks (truncation) it is read again from its start.
pub fn follow(
    files: &LogFiles,
    mut position: Option<(File, u64)>,
    out: &mut impl Write,
    stop: &dyn Fn() -> bool,
    poll: Duration,
) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    while !stop() {
        let mut progressed = false;
        if let Some((file, pos)) = &mut position {
            progressed |= copy_new(file, pos, &mut buf, out)?;
            match std::fs::metadata(&files.current) {
                Ok(meta) => {
                    let open = file.metadata()?;
                    if (meta.dev(), meta.ino()) != (open.dev(), open.ino()) {
                        // Rotated: finish the old file, then switch.
                        copy_new(file, pos, &mut buf, out)?;
                        position = open_if_exists(&files.current)?.map(|f| (f, 0));
                        progressed = true;
                    } else if meta.len() < *pos {
                        *pos = 0;
                        progressed = true;
                    }
                }
                // Between the rename and the new file: wait.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        } else if let Some(file) = open_if_exists(&files.current)? {
            position = Some((file, 0));
            progressed = true;
        }
        if progressed {
            out.flush()?;
        } else {
            std::thread::sleep(poll);
        }
    }
    Ok(())
}

/// Copies the bytes of `file` from `pos` to its end; true if there were any.
fn copy_new(
    file: &mut File,
    pos: &mut u64,
    buf: &mut [u8],
    out: &mut impl Write,
) -> io::Result<bool> {
    file.seek(SeekFrom::Start(*pos))?;
    let mut any = false;
    loop {
        let n = match file.read(buf) {
            Ok(0) => return Ok(any),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..n])?;
        *pos += n as u64;
        any = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn text(tail: &Tail) -> Vec<String> {
        tail.lines
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    fn numbered(range: std::ops::Range<usize>) -> String {
        range.map(|i| format!("line {i}\n")).collect()
    }

    #[test]
    fn tail_spans_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::new(dir.path(), "web.service");
        assert_eq!(files.current, dir.path().join("web.service.log"));
        write(&files.previous, &numbered(0..100));
        write(&files.current, &numbered(100..103));
        assert_eq!(
            text(&tail(&files, 5).unwrap()),
            ["line 98", "line 99", "line 100", "line 101", "line 102"]
        );
        assert_eq!(text(&tail(&files, 2).unwrap()), ["line 101", "line 102"]);
        assert_eq!(tail(&files, 1000).unwrap().lines.len(), 103);
        assert!(tail(&files, 0).unwrap().lines.is_empty());
        // Only the previous file (the new one not created yet).
        std::fs::remove_file(&files.current).unwrap();
        let t = tail(&files, 2).unwrap();
        assert_eq!(text(&t), ["line 98", "line 99"]);
        assert!(t.position.is_none());
        // Only the current one, empty.
        std::fs::remove_file(&files.previous).unwrap();
        write(&files.current, "");
        assert!(tail(&files, 10).unwrap().lines.is_empty());
    }

    #[test]
    fn tail_of_big_files_and_odd_endings() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::new(dir.path(), "big.service");
        // Larger than one backwards chunk, long lines across chunk edges.
        let long = "x".repeat(50_000);
        let body: String = (0..10).map(|i| format!("{i}{long}\n")).collect();
        write(&files.current, &format!("{body}\nlast without newline"));
        let t = tail(&files, 3).unwrap();
        assert_eq!(t.lines.len(), 3);
        assert_eq!(t.lines[0], format!("9{long}").into_bytes());
        assert_eq!(t.lines[1], b"");
        assert_eq!(t.lines[2], b"last without newline");
        // Following leaves the unfinished line to `follow`.
        let t = tail_for_follow(&files, 3, true).unwrap();
        assert_eq!(t.lines.len(), 2);
        let (_, pos) = t.position.unwrap();
        assert_eq!(pos as usize, body.len() + 1);
        // Not UTF-8: bytes are kept.
        std::fs::write(&files.current, b"\xff\xfe\n\xc3(\n").unwrap();
        assert_eq!(
            tail(&files, 5).unwrap().lines,
            [b"\xff\xfe".to_vec(), b"\xc3(".to_vec()]
        );
    }

    #[test]
    fn missing_log_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::new(dir.path(), "nope.service");
        let err = tail(&files, 10).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&files.current.display().to_string()), "{msg}");
        assert!(matches!(err, LogError::Missing(_)));
        let files = LogFiles::for_current(dir.path().join("a.log"));
        assert_eq!(files.previous, dir.path().join("a.log.1"));
    }

    /// A `Write` both the follower thread and the test see.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }

        fn wait_for(&self, expected: &str) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.text() != expected {
                assert!(
                    Instant::now() < deadline,
                    "got {:?}, want {expected:?}",
                    self.text()
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    #[test]
    fn follow_picks_up_appends_rotation_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::new(dir.path(), "web.service");
        write(&files.current, "one\ntwo\nthr");
        let t = tail_for_follow(&files, 10, true).unwrap();
        let out = Shared::default();
        let mut printed = out.clone();
        t.write_all(&mut printed).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let follower = {
            let (files, stop, mut out) = (files.clone(), stop.clone(), out.clone());
            std::thread::spawn(move || {
                follow(
                    &files,
                    t.position,
                    &mut out,
                    &|| stop.load(Ordering::SeqCst),
                    Duration::from_millis(10),
                )
            })
        };
        out.wait_for("one\ntwo\nthr");
        append(&files.current, "ee\nfour\n");
        out.wait_for("one\ntwo\nthree\nfour\n");
        // Rotation: lines written just before the rename are not lost.
        append(&files.current, "five\n");
        std::fs::rename(&files.current, &files.previous).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        write(&files.current, "six\n");
        out.wait_for("one\ntwo\nthree\nfour\nfive\nsix\n");
        append(&files.current, "seven\n");
        out.wait_for("one\ntwo\nthree\nfour\nfive\nsix\nseven\n");
        // Truncation in place: read again from the start.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&files.current)
            .unwrap()
            .set_len(0)
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        append(&files.current, "8\n");
        out.wait_for("one\ntwo\nthree\nfour\nfive\nsix\nseven\n8\n");
        stop.store(true, Ordering::SeqCst);
        follower.join().unwrap().unwrap();
    }

    #[test]
    fn follow_waits_for_the_current_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = LogFiles::new(dir.path(), "late.service");
        write(&files.previous, "old\n");
        let t = tail_for_follow(&files, 10, true).unwrap();
        assert!(t.position.is_none());
        let out = Shared::default();
        let mut printed = out.clone();
        t.write_all(&mut printed).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let follower = {
            let (files, stop, mut out) = (files.clone(), stop.clone(), out.clone());
            std::thread::spawn(move || {
                follow(
                    &files,
                    None,
                    &mut out,
                    &|| stop.load(Ordering::SeqCst),
                    Duration::from_millis(10),
                )
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        write(&files.current, "new\n");
        out.wait_for("old\nnew\n");
        stop.store(true, Ordering::SeqCst);
        follower.join().unwrap().unwrap();
    }
}
