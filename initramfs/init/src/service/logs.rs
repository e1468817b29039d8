//! Service output: each service's stdout and stderr come to PID 1 through
//! one pipe and are written, line by line with a UTC timestamp, to
//! `/var/log/services/<unit>.log`. When a file reaches its size bound it
//! becomes `<unit>.log.1` (replacing the previous one) and a new file is
//! started, so a chatty service can never fill `/var`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the logs go.
pub const LOG_DIR: &str = "/var/log/services";
/// Bytes in one file before it is rotated; two files are kept.
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024;
/// A line longer than this is cut into pieces (a service that never
/// prints a newline must not make PID 1 buffer without bound).
const MAX_LINE: usize = 4096;

/// The log of one unit.
#[derive(Debug)]
pub struct UnitLog {
    path: PathBuf,
    file: Option<File>,
    written: u64,
    max_bytes: u64,
    partial: Vec<u8>,
}

impl UnitLog {
    pub fn new(dir: &Path, unit: &str, max_bytes: u64) -> UnitLog {
        UnitLog {
            path: dir.join(format!("{unit}.log")),
            file: None,
            written: 0,
            max_bytes,
            partial: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes bytes read from the service's pipe; returns the complete
    /// lines (for the console copy).
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                lines.push(self.take_partial());
            } else {
                self.partial.push(b);
                if self.partial.len() >= MAX_LINE {
                    lines.push(self.take_partial());
                }
            }
        }
        for line in &lines {
            self.write_line(line);
        }
        lines
    }

    /// Writes what is left without a newline (the pipe closed).
    pub fn flush_partial(&mut self) -> Option<String> {
        if self.partial.is_empty() {
            return None;
        }
        let line = self.take_partial();
        self.write_line(&line);
        Some(line)
    }

    /// A line from the service manager itself (`Started`, `exited with
    /// status 1`, …), so the log tells the whole story of the unit.
    pub fn note(&mut self, text: &str) {
        self.write_line(&format!("slipway: {text}"));
    }

    fn take_partial(&mut self) -> String {
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        line
    }

    fn write_line(&mut self, line: &str) {
        let text = format!("{} {line}\n", rfc3339_utc(SystemTime::now()));
        if self.file.is_none() {
            self.open();
        }
        if self.written > 0 && self.written + text.len() as u64 > self.max_bytes {
            self.rotate();
        }
        if let Some(f) = &mut self.file {
            // A full or failing /var must not stop the service or PID 1;
            // the line is lost, which is all that can be done.
            if f.write_all(text.as_bytes()).is_ok() {
                self.written += text.len() as u64;
            }
        }
    }

    fn open(&mut self) {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode_0640()
            .open(&self.path)
            .ok();
        self.written = self
            .file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
    }

    fn rotate(&mut self) {
        self.file = None;
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        let _ = std::fs::rename(&self.path, old);
        self.open();
    }
}

trait Mode0640 {
    fn mode_0640(&mut self) -> &mut Self;
}

impl Mode0640 for OpenOptions {
    fn mode_0640(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o640).custom_flags(libc::O_CLOEXEC)
    }
}

/// `2026-12-01T07:16:25.123Z`. Written by hand: civil-from-days is ten
/// lines, and a date crate in PID 1 would cost more than it gives.
pub fn rfc3339_utc(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar, counting in 400-year eras that start on 1 March.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_in_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_850_185_123);
        assert_eq!(rfc3339_utc(t), "2026-11-28T07:16:25.123Z");
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // A leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339_utc(t), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn lines_are_timestamped_and_split() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = UnitLog::new(dir.path(), "a.service", DEFAULT_MAX_BYTES);
        assert_eq!(log.feed(b"one\ntw"), vec!["one"]);
        assert_eq!(log.feed(b"o\n"), vec!["two"]);
        log.feed(b"tail");
        assert_eq!(log.flush_partial().as_deref(), Some("tail"));
        let text = std::fs::read_to_string(dir.path().join("a.service.log")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].ends_with("Z one"), "{}", lines[0]);
        assert!(lines[2].ends_with("Z tail"));
    }

    #[test]
    fn long_lines_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = UnitLog::new(dir.path(), "a.service", DEFAULT_MAX_BYTES);
        let lines = log.feed(&vec![b'x'; MAX_LINE * 2 + 10]);
        assert_eq!(lines.len(), 2);
        assert_eq!(log.flush_partial().map(|l| l.len()), Some(10));
    }

    #[test]
    fn rotation_keeps_two_bounded_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = UnitLog::new(dir.path(), "a.service", 1000);
        for i in 0..200 {
            log.feed(format!("line {i}\n").as_bytes());
        }
        let cur = std::fs::metadata(dir.path().join("a.service.log"))
            .unwrap()
            .len();
        let old = std::fs::metadata(dir.path().join("a.service.log.1"))
            .unwrap()
            .len();
        assert!(cur <= 1000 && old <= 1000, "{cur} {old}");
        let text = std::fs::read_to_string(dir.path().join("a.service.log")).unwrap();
        assert!(text.trim_end().ends_with("line 199"));
        let entries = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(entries, 2);
    }
}
