//! Telling the forms of user-data apart: cloud-config, script, Ignition,
//! empty, or something we cannot use; after an optional gzip layer.

use std::fmt;
use std::io::Read;

use serde::Serialize;

use crate::findings::Finding;

/// Decompressed user-data larger than this is refused: it would not be a
/// sensible configuration, and a gzip bomb must not exhaust PID 1's memory.
pub const MAX_DECOMPRESSED: u64 = 16 * 1024 * 1024;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The form of a piece of user-data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum UserDataKind {
    /// No user-data at all (valid: nothing to do).
    Empty,
    /// First line `#cloud-config`.
    CloudConfig,
    /// First line `#!`: run as a program.
    Script,
    /// An Ignition config (JSON with `ignition.version`): not ours.
    Ignition,
    /// Anything else (including data we could not decompress).
    Unknown,
}

impl fmt::Display for UserDataKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UserDataKind::Empty => "empty",
            UserDataKind::CloudConfig => "cloud-config",
            UserDataKind::Script => "script",
            UserDataKind::Ignition => "ignition",
            UserDataKind::Unknown => "unknown",
        })
    }
}

/// User-data after the gzip layer, with its form.
#[derive(Debug, Clone, PartialEq)]
pub struct UserData {
    pub kind: UserDataKind,
    /// The bytes after decompression (a script is run from these).
    pub body: Vec<u8>,
    /// Why the data cannot be used, when it cannot (at most one error).
    pub findings: Vec<Finding>,
}

impl UserData {
    /// The body as text; None if it is not UTF-8. Cloud-config is always
    /// text (detection reports an error otherwise).
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }
}

/// Decompress (if gzip) and classify `bytes`.
pub fn detect(bytes: &[u8]) -> UserData {
    let body = match gunzip_if_compressed(bytes) {
        Ok(body) => body,
        Err(message) => {
            return UserData {
                kind: UserDataKind::Unknown,
                body: bytes.to_vec(),
                findings: vec![Finding::error(1, 1, message)],
            }
        }
    };
    let (kind, finding) = classify(&body);
    UserData {
        kind,
        body,
        findings: finding.into_iter().collect(),
    }
}

fn gunzip_if_compressed(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(bytes.to_vec());
    }
    gunzip_capped(bytes, MAX_DECOMPRESSED)
        .map_err(|e| format!("user-data is gzip-compressed but {e}"))
}

/// Gunzip at most `cap` bytes; more is an error rather than a truncation.
pub(crate) fn gunzip_capped(bytes: &[u8], cap: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut reader = flate2::read::GzDecoder::new(bytes).take(cap + 1);
    reader
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot be decompressed: {e}"))?;
    if out.len() as u64 > cap {
        return Err(format!("decompresses to more than {cap} bytes"));
    }
    Ok(out)
}

fn classify(body: &[u8]) -> (UserDataKind, Option<Finding>) {
    if body.iter().all(u8::is_ascii_whitespace) {
        return (UserDataKind::Empty, None);
    }
    let first = first_line(body);
    if first.starts_with(b"#!") {
        return (UserDataKind::Script, None);
    }
    if is_ignition(body) {
        let msg = "this is an Ignition config; Slipway reads cloud-config \
                   (first line `#cloud-config`) or a `#!` script";
        return (UserDataKind::Ignition, Some(Finding::error(1, 1, msg)));
    }
    if trim_end(first) == b"#cloud-config" {
        return match std::str::from_utf8(body) {
            Ok(_) => (UserDataKind::CloudConfig, None),
            Err(e) => (UserDataKind::CloudConfig, Some(not_utf8(body, e))),
        };
    }
    (UserDataKind::Unknown, Some(unknown_first_line(first)))
}

/// The first line without its newline (and without a UTF-8 byte order
/// mark, which editors on some systems add silently).
fn first_line(body: &[u8]) -> &[u8] {
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    let end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
    &body[..end]
}

fn trim_end(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &line[..end]
}

fn is_ignition(body: &[u8]) -> bool {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    json.get("ignition")
        .and_then(|i| i.get("version"))
        .is_some()
}

fn not_utf8(body: &[u8], e: std::str::Utf8Error) -> Finding {
    let valid = &body[..e.valid_up_to()];
    let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&valid[line_start..])
        .chars()
        .count()
        + 1;
    Finding::error(line, column, "user-data is not valid UTF-8 text")
}

/// How much of an unexpected first line to quote back.
const QUOTE_LIMIT: usize = 40;

fn unknown_first_line(first: &[u8]) -> Finding {
    let text = String::from_utf8_lossy(trim_end(first));
    let mut quoted: String = text.chars().take(QUOTE_LIMIT).collect();
    if text.chars().count() > QUOTE_LIMIT {
        quoted.push('…');
    }
    Finding::error(
        1,
        1,
        format!(
            "user-data must start with a line \"#cloud-config\" (a cloud-config) \
             or \"#!\" (a script); found {quoted:?}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn kinds() {
        assert_eq!(detect(b"").kind, UserDataKind::Empty);
        assert_eq!(detect(b"\n  \n").kind, UserDataKind::Empty);
        assert_eq!(detect(b"#!/bin/sh\necho hi\n").kind, UserDataKind::Script);
        let cc = detect(b"#cloud-config \r\nhostname: a\n");
        assert_eq!(cc.kind, UserDataKind::CloudConfig);
        assert!(cc.findings.is_empty());
    }

    #[test]
    fn gzip_layer_is_removed() {
        let d = detect(&gzip(b"#cloud-config\nhostname: a\n"));
        assert_eq!(d.kind, UserDataKind::CloudConfig);
        assert_eq!(d.text(), Some("#cloud-config\nhostname: a\n"));
    }

    #[test]
    fn corrupt_gzip_is_an_error() {
        let d = detect(&[0x1f, 0x8b, 8, 0, 1, 2, 3]);
        assert_eq!(d.kind, UserDataKind::Unknown);
        assert!(d.findings[0]
            .message
            .starts_with("user-data is gzip-compressed but"));
    }

    #[test]
    fn gzip_cap_is_enforced() {
        let big = gzip(&vec![b'a'; 5000]);
        assert!(gunzip_capped(&big, 4096).is_err());
        assert_eq!(gunzip_capped(&big, 5000).unwrap().len(), 5000);
    }

    #[test]
    fn ignition_is_named() {
        let d = detect(br#"{"ignition": {"version": "3.4.0"}}"#);
        assert_eq!(d.kind, UserDataKind::Ignition);
        assert!(d.findings[0].message.contains("Ignition config"));
    }

    #[test]
    fn unknown_quotes_the_first_line() {
        let d = detect(b"hostname: a\n");
        assert_eq!(d.kind, UserDataKind::Unknown);
        let f = &d.findings[0];
        assert_eq!((f.line, f.column), (1, 1));
        assert!(
            f.message.ends_with("found \"hostname: a\""),
            "{}",
            f.message
        );
        let long = detect(&[b'x'; 100]);
        assert!(long.findings[0].message.ends_with("xxx…\""));
    }

    #[test]
    fn non_utf8_cloud_config_is_located() {
        let d = detect(b"#cloud-config\nhostname: a\xff\n");
        assert_eq!((d.findings[0].line, d.findings[0].column), (2, 12));
    }
}
