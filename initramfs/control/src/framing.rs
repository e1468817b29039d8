//! One JSON object per line, bounded.

use std::fmt;
use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The longest line [`read_message`] accepts, not counting the `\n`: 64 KiB.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// The longest response line the client ([`crate::call`]) accepts: 4 MiB.
/// Requests are small, responses carry the status of every unit.
pub const MAX_RESPONSE: usize = 4 * 1024 * 1024;

/// What can go wrong talking to the service manager.
#[derive(Debug)]
pub enum ProtoError {
    /// Reading or writing the stream failed.
    Io(io::Error),
    /// The peer closed the connection before sending anything.
    Eof,
    /// A line was longer than the limit (in bytes).
    TooLong { limit: usize },
    /// The line is not the expected JSON (or a message could not be encoded).
    Json(serde_json::Error),
    /// The client could not connect to the socket.
    Connect { path: PathBuf, source: io::Error },
    /// No answer within the time given.
    Timeout(Duration),
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoError::Io(e) => write!(f, "control connection: {e}"),
            ProtoError::Eof => {
                f.write_str("the service manager closed the connection without an answer")
            }
            ProtoError::TooLong { limit } => {
                write!(f, "message longer than the limit of {limit} bytes")
            }
            ProtoError::Json(e) => write!(f, "malformed message: {e}"),
            ProtoError::Connect { path, source }
                if source.kind() == io::ErrorKind::PermissionDenied =>
            {
                write!(
                    f,
                    "the service manager's socket {} is for root only; run it as root, \
                     e.g. `sudo slipctl status`",
                    path.display()
                )
            }
            ProtoError::Connect { path, source } => write!(
                f,
                "cannot reach the service manager at {}: {source}; is this a Slipway machine?",
                path.display()
            ),
            ProtoError::Timeout(d) => write!(
                f,
                "the service manager did not answer within {} s",
                d.as_secs_f64()
            ),
        }
    }
}

impl std::error::Error for ProtoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProtoError::Io(e) | ProtoError::Connect { source: e, .. } => Some(e),
            ProtoError::Json(e) => Some(e),
            ProtoError::Eof | ProtoError::TooLong { .. } | ProtoError::Timeout(_) => None,
        }
    }
}

impl From<io::Error> for ProtoError {
    fn from(e: io::Error) -> Self {
        ProtoError::Io(e)
    }
}

impl From<serde_json::Error> for ProtoError {
    fn from(e: serde_json::Error) -> Self {
        ProtoError::Json(e)
    }
}

/// Reads one message: one line of JSON of at most [`MAX_MESSAGE`] bytes.
pub fn read_message<T: DeserializeOwned>(r: &mut impl BufRead) -> Result<T, ProtoError> {
    read_message_with_limit(r, MAX_MESSAGE)
}

/// Reads one message of at most `limit` bytes (not counting the `\n`).
/// Never buffers more than `limit` bytes of the line; on
/// [`ProtoError::TooLong`] the rest of the line stays unread.
pub fn read_message_with_limit<T: DeserializeOwned>(
    r: &mut impl BufRead,
    limit: usize,
) -> Result<T, ProtoError> {
    let line = read_line(r, limit)?;
    Ok(serde_json::from_slice(&line)?)
}

fn read_line(r: &mut impl BufRead, limit: usize) -> Result<Vec<u8>, ProtoError> {
    let mut line = Vec::new();
    let mut seen_any = false;
    loop {
        let buf = match r.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if buf.is_empty() {
            // End of stream: a last line without its newline still counts.
            return if seen_any {
                Ok(line)
            } else {
                Err(ProtoError::Eof)
            };
        }
        seen_any = true;
        let newline = buf.iter().position(|&b| b == b'\n');
        let (part, used) = match newline {
            Some(i) => (buf.get(..i).unwrap_or_default(), i.saturating_add(1)),
            None => (buf, buf.len()),
        };
        if line.len().saturating_add(part.len()) > limit {
            return Err(ProtoError::TooLong { limit });
        }
        line.extend_from_slice(part);
        r.consume(used);
        if newline.is_some() {
            return Ok(line);
        }
    }
}

/// Writes one message as one line of compact JSON, `\n`, and flushes.
pub fn write_message<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), ProtoError> {
    let mut line = serde_json::to_vec(msg)?;
    line.push(b'\n');
    w.write_all(&line)?;
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_socket_says_it_needs_root_and_other_errors_say_what_happened() {
        let err = |kind| ProtoError::Connect {
            path: "/run/slipway/control.sock".into(),
            source: io::Error::from(kind),
        };
        let denied = err(io::ErrorKind::PermissionDenied).to_string();
        assert!(denied.contains("for root only"), "{denied}");
        assert!(denied.contains("sudo slipctl status"), "{denied}");
        let missing = err(io::ErrorKind::NotFound).to_string();
        assert!(
            missing.contains("cannot reach the service manager"),
            "{missing}"
        );
    }
}
