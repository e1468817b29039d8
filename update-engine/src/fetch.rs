//! Reading payloads and release feeds from a URL or a local file.
//!
//! The engine runs inside a static musl binary on the machine, so the
//! transport is deliberately small: plain HTTP/1.1 through `ureq` without a
//! TLS stack. That is safe because nothing downloaded is trusted on the
//! strength of the transport: the feed and every payload carry ed25519
//! signatures checked against keys baked into the image, and each payload
//! chunk is hashed as it arrives. What the transport must get right is
//! *liveness* on poor links, hence resuming with `Range` requests after a
//! dropped connection, and politeness, hence the rate limit.
//!
//! A file path works everywhere a URL does, so a payload on a USB stick or a
//! mounted share goes through the same code (and the same tests) as a
//! download.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where a feed or payload comes from.
///
/// One type for both because the feed names its payloads by reference, and a
/// feed read from a file (offline updates, tests) must resolve those
/// references to files just as a downloaded feed resolves them to URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A local path (relative paths are relative to the working directory).
    File(PathBuf),
    /// An `http://` (or, rejected when opened, `https://`) URL.
    Url(String),
}

impl Source {
    /// `http://` or `https://` (any letter case) makes a URL; anything else
    /// is a path. A `file://` prefix is stripped, so configuration may use
    /// URL syntax for local files too.
    pub fn parse(s: &str) -> Source {
        if has_prefix_ignore_case(s, "http://") || has_prefix_ignore_case(s, "https://") {
            Source::Url(s.to_owned())
        } else if let Some(path) = strip_prefix_ignore_case(s, "file://") {
            Source::File(PathBuf::from(path))
        } else {
            Source::File(PathBuf::from(s))
        }
    }

    /// The URL or path, for messages and logs; [`Source::parse`] reads it
    /// back as the same source. A path that would read as a URL, or as a
    /// `file://` one (a folder named `http:`), keeps a `file://` prefix
    /// (found by the `fetch_headers` fuzz target: `file://http://` came
    /// back as a URL).
    pub fn describe(&self) -> String {
        match self {
            Source::File(p) => {
                let text = p.display().to_string();
                if ["http://", "https://", "file://"]
                    .iter()
                    .any(|scheme| has_prefix_ignore_case(&text, scheme))
                {
                    format!("file://{text}")
                } else {
                    text
                }
            }
            Source::Url(u) => u.clone(),
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// How a download behaves on a slow or unreliable network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// Bytes per second delivered to the caller; `None` (or `Some(0)`) means
    /// unlimited. Machines in the field often share a thin uplink with the
    /// service they run, so updates must be able to stay in the background.
    pub rate_limit: Option<u64>,
    /// Reconnect attempts after a connection fails mid-stream. The count is
    /// of *consecutive* failures: once a resumed connection delivers bytes
    /// again the budget is full again, so a long download over a link that
    /// hiccups now and then completes, while a dead server is given up on.
    pub retries: u32,
    /// Connect timeout, and the longest a response may stay silent (waiting
    /// for headers or between reads) before the connection counts as broken.
    pub timeout: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            rate_limit: None,
            retries: 5,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Why a feed or payload could not be read. Every message names the URL or
/// file, because the daemon logs them unattended and an operator reading the
/// journal has to know which server or mirror to look at.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// This build has no TLS stack (see the module docs).
    #[error(
        "{url}: https is not supported by this build of the update engine (no TLS stack); \
         use an http:// URL (feeds and payloads are signed, so the transport need not be trusted)"
    )]
    TlsUnsupported { url: String },
    /// The URL could not be parsed or used.
    #[error("{url}: invalid URL: {reason}")]
    BadUrl { url: String, reason: String },
    /// Connecting, sending the request or receiving the response headers
    /// failed (refused, timed out, host not found, protocol error).
    #[error("{url}: {source}")]
    Http {
        url: String,
        #[source]
        source: ureq::Error,
    },
    /// The server answered with a status that is neither 200 nor 206.
    #[error("{url}: HTTP {status} {reason}")]
    Status {
        url: String,
        status: u16,
        reason: String,
    },
    /// A `Range: bytes=N-` request was answered with the whole document.
    /// This is an error rather than a silent restart from byte 0: the caller
    /// asked to continue at `offset`, the bytes before it are already
    /// written, and quietly re-downloading them (possibly hundreds of MiB
    /// over a metered link) would hide a server misconfiguration.
    #[error(
        "{url}: server ignored the Range request (asked for bytes from {offset} on, got the whole \
         file with 200 OK); resuming needs a server that supports byte ranges"
    )]
    RangeIgnored { url: String, offset: u64 },
    /// A 206 response that does not start where asked, or is unparsable.
    #[error("{url}: asked for bytes from {offset} on, server answered with Content-Range {content_range:?}")]
    BadContentRange {
        url: String,
        offset: u64,
        content_range: String,
    },
    /// The document's size is not the one the caller expected (the feed
    /// states each payload's size) or changed between two connections.
    #[error("{what}: is {actual} bytes long, expected {expected}")]
    LengthMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    /// The server's validator (ETag or Last-Modified) changed between two
    /// connections of one download: the bytes before and after would come
    /// from different files.
    #[error("{url}: changed on the server during the download ({before} became {after})")]
    Changed {
        url: String,
        before: String,
        after: String,
    },
    /// The requested offset lies beyond the end of the document.
    #[error("{what}: offset {offset} is beyond the end ({len} bytes)")]
    OffsetBeyondEnd { what: String, offset: u64, len: u64 },
    /// A small document (the feed) is larger than its cap; refusing it keeps
    /// a hostile or broken server from exhausting the machine's memory.
    #[error("{what}: larger than the limit of {max} bytes")]
    TooLarge { what: String, max: usize },
    /// A local file could not be opened, sought or measured.
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Reading the body of a small document failed.
    #[error("reading {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl FetchError {
    /// Whether trying again later could help: network trouble and server
    /// overload, but not a missing file or a server without Range support.
    fn is_transient(&self) -> bool {
        match self {
            FetchError::Http { source, .. } => matches!(
                source,
                ureq::Error::Io(_)
                    | ureq::Error::Timeout(_)
                    | ureq::Error::HostNotFound
                    | ureq::Error::ConnectionFailed
                    | ureq::Error::Protocol(_)
            ),
            FetchError::Status { status, .. } => {
                matches!(status, 408 | 429) || (500..600).contains(status)
            }
            _ => false,
        }
    }

    fn io_kind(&self) -> io::ErrorKind {
        match self {
            FetchError::Http {
                source: ureq::Error::Io(e),
                ..
            } => e.kind(),
            FetchError::Http {
                source: ureq::Error::Timeout(_),
                ..
            } => io::ErrorKind::TimedOut,
            FetchError::Changed { .. }
            | FetchError::LengthMismatch { .. }
            | FetchError::BadContentRange { .. }
            | FetchError::RangeIgnored { .. } => io::ErrorKind::InvalidData,
            _ => io::ErrorKind::Other,
        }
    }
}

/// First wait before reconnecting; doubled per consecutive failure.
const BACKOFF: Duration = Duration::from_millis(500);
/// Upper bound of the wait, so a long retry budget keeps probing regularly.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Opens the bytes of `source` from byte `offset` on, as a reader.
///
/// `expected_len` is the length of the *whole* document (as the feed states
/// it), not of the part from `offset` on. When given, a document of another
/// size is refused up front, and for URLs a connection that ends before it
/// counts as broken even if the server sent no length.
///
/// URLs: a `GET`, with `Range: bytes=<offset>-` when `offset > 0`. A `200`
/// answer to a ranged request is [`FetchError::RangeIgnored`], not a silent
/// re-read from 0 (see there why). When the connection breaks mid-stream
/// (I/O error, idle timeout, or the end arriving early) the reader
/// reconnects with `Range: bytes=<position>-` after 0.5 s, 1 s, 2 s… up to
/// `opts.retries` consecutive times, logging one line per attempt to stderr.
/// It also refuses to splice together two different files: the total size
/// and the ETag (or Last-Modified) must stay the same across reconnects.
/// Once retries are exhausted, `read` fails with an `io::Error` naming the
/// URL and the byte offset. Failure to make the first connection is
/// returned at once (no retries): the daemon retries on its own schedule.
///
/// Files: opened and sought to `offset`.
///
/// In both cases `opts.rate_limit` caps the bytes per second delivered, in
/// small steps so that a large `read` does not arrive as one burst.
pub fn open(
    source: &Source,
    offset: u64,
    expected_len: Option<u64>,
    opts: &FetchOptions,
) -> Result<Box<dyn Read + Send>, FetchError> {
    open_with_backoff(source, offset, expected_len, opts, BACKOFF)
}

/// [`open`] with the first reconnect wait given, so tests need not sleep.
fn open_with_backoff(
    source: &Source,
    offset: u64,
    expected_len: Option<u64>,
    opts: &FetchOptions,
    backoff: Duration,
) -> Result<Box<dyn Read + Send>, FetchError> {
    let inner: Box<dyn Read + Send> = match source {
        Source::File(path) => Box::new(open_file(path, offset, expected_len)?),
        Source::Url(url) => Box::new(HttpReader::open(
            &agent(opts),
            url,
            (offset, None),
            expected_len,
            opts,
            backoff,
        )?),
    };
    Ok(throttled(inner, opts))
}

/// `opts.rate_limit` applied to a reader.
fn throttled(inner: Box<dyn Read + Send>, opts: &FetchOptions) -> Box<dyn Read + Send> {
    match opts.rate_limit {
        Some(rate) if rate > 0 => Box::new(Throttled {
            inner,
            bucket: TokenBucket::new(rate, Box::new(SystemClock(Instant::now()))),
        }),
        _ => inner,
    }
}

/// Byte ranges of one document, for delta updates: many small requests to
/// the same server, so one `ureq` agent keeps the connection alive between
/// them where the server allows it.
pub struct Ranges {
    source: Source,
    agent: ureq::Agent,
    len: u64,
    opts: FetchOptions,
    backoff: Duration,
}

impl Ranges {
    /// `len` is the document's whole size (the feed's): a server that
    /// reports another is refused, as [`open`] does.
    pub fn new(source: &Source, len: u64, opts: &FetchOptions) -> Ranges {
        Ranges {
            source: source.clone(),
            agent: agent(opts),
            len,
            opts: opts.clone(),
            backoff: BACKOFF,
        }
    }

    /// Bytes `start..end` of the document, with `Range: bytes=START-LAST`
    /// for a URL, resuming within the range after a dropped connection as
    /// [`open`] does. A server that answers with the whole document is
    /// [`FetchError::RangeIgnored`]: the caller falls back to a full
    /// download rather than receive bytes it did not ask for.
    pub fn open(&self, start: u64, end: u64) -> Result<Box<dyn Read + Send>, FetchError> {
        if end < start || end > self.len {
            return Err(FetchError::OffsetBeyondEnd {
                what: self.source.describe(),
                offset: end,
                len: self.len,
            });
        }
        if end == start {
            return Ok(Box::new(io::empty()));
        }
        let inner: Box<dyn Read + Send> = match &self.source {
            Source::File(path) => {
                Box::new(open_file(path, start, Some(self.len))?.take(end - start))
            }
            Source::Url(url) => Box::new(HttpReader::open(
                &self.agent,
                url,
                (start, Some(end)),
                Some(self.len),
                &self.opts,
                self.backoff,
            )?),
        };
        Ok(throttled(inner, &self.opts))
    }
}

/// One agent per download (or per [`Ranges`]); its timeouts are the
/// options'.
fn agent(opts: &FetchOptions) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        // Statuses are handled here, to name them and to accept 206/416.
        .http_status_as_error(false)
        .timeout_resolve(Some(opts.timeout))
        .timeout_connect(Some(opts.timeout))
        .timeout_send_request(Some(opts.timeout))
        .timeout_recv_response(Some(opts.timeout))
        // Idle timeout only: a whole payload may take hours at a low
        // rate limit, so there is no total budget for the body.
        .timeout_per_read(Some(opts.timeout))
        .build();
    ureq::Agent::new_with_config(config)
}

/// A small document (the release feed) in full, refusing more than `max`
/// bytes. The rate limit is not applied (a feed is a few KiB and checking
/// for updates should not crawl); the retry budget is, via [`open`]'s
/// resuming reader.
pub fn get_small(source: &Source, max: usize, opts: &FetchOptions) -> Result<Vec<u8>, FetchError> {
    let too_large = || FetchError::TooLarge {
        what: source.describe(),
        max,
    };
    let reader: Box<dyn Read + Send> = match source {
        Source::File(path) => {
            let file = open_file(path, 0, None)?;
            let len = file_len(&file, path)?;
            if len > max as u64 {
                return Err(too_large());
            }
            Box::new(file)
        }
        Source::Url(url) => {
            let reader = HttpReader::open(&agent(opts), url, (0, None), None, opts, BACKOFF)?;
            // Refuse early when the server says how big it is.
            if reader.end.is_some_and(|end| end > max as u64) {
                return Err(too_large());
            }
            Box::new(reader)
        }
    };
    // One byte over the cap tells "exactly max" from "more than max".
    let mut bytes = Vec::new();
    reader
        .take(max as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|source_err| FetchError::Read {
            what: source.describe(),
            source: source_err,
        })?;
    if bytes.len() > max {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Resolves `reference` against `base`, the way a feed names its payloads.
///
/// An absolute `http://`/`https://` reference stands alone. For a URL base
/// the rest follows RFC 3986 §5.2: `//host/p` keeps the scheme, `/p` keeps
/// scheme and authority, `?q` keeps the path, and a relative path is merged
/// with the base's directory and its `.`/`..` segments removed (never above
/// the root). Fragments are dropped: they are never sent to a server.
///
/// For a file base, a relative reference is taken relative to the directory
/// of the base file (`..` is left to the file system, which resolves it
/// correctly even through symbolic links); an absolute path or `file://`
/// reference stands alone.
pub fn resolve(base: &Source, reference: &str) -> Source {
    if has_prefix_ignore_case(reference, "http://") || has_prefix_ignore_case(reference, "https://")
    {
        return Source::Url(reference.to_owned());
    }
    match base {
        Source::Url(base) => Source::Url(resolve_url(base, reference)),
        Source::File(base) => {
            let reference = strip_prefix_ignore_case(reference, "file://").unwrap_or(reference);
            let reference = Path::new(reference);
            if reference.is_absolute() {
                return Source::File(reference.to_owned());
            }
            let dir = base.parent().unwrap_or(Path::new(""));
            Source::File(dir.join(reference))
        }
    }
}

fn has_prefix_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    // The prefixes are ASCII, so slicing after them is on a char boundary.
    has_prefix_ignore_case(s, prefix).then(|| &s[prefix.len()..])
}

/// RFC 3986 §5.2.2 for the cases a feed can hold (the reference has no
/// scheme other than http(s), which the caller has handled).
fn resolve_url(base: &str, reference: &str) -> String {
    let reference = reference.split('#').next().unwrap_or("");
    let base = base.split('#').next().unwrap_or("");
    // "scheme://authority" | path | "?query"
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[after_scheme..]
        .find(['/', '?'])
        .map_or(base.len(), |i| after_scheme + i);
    let origin = &base[..authority_end];
    let (base_path, base_query) = split_query(&base[authority_end..]);
    let scheme = &base[..after_scheme.saturating_sub(2)]; // "http:"

    if reference.starts_with("//") {
        let (path, query) = split_query(reference);
        // The authority is part of `path` here; dot removal applies to the
        // path after it only.
        let auth_end = path[2..].find('/').map_or(path.len(), |i| i + 2);
        let (auth, p) = path.split_at(auth_end);
        return format!("{scheme}{auth}{}{query}", remove_dot_segments(p));
    }
    let (ref_path, ref_query) = split_query(reference);
    let (path, query) = if ref_path.is_empty() {
        let query = if ref_query.is_empty() {
            base_query
        } else {
            ref_query
        };
        (base_path.to_owned(), query)
    } else if ref_path.starts_with('/') {
        (remove_dot_segments(ref_path), ref_query)
    } else {
        let merged = match base_path.rfind('/') {
            Some(i) => format!("{}{}", &base_path[..=i], ref_path),
            // An authority with an empty path: the reference hangs off "/".
            None => format!("/{ref_path}"),
        };
        (remove_dot_segments(&merged), ref_query)
    };
    format!("{origin}{path}{query}")
}

/// Splits "path?query" into ("path", "?query").
fn split_query(s: &str) -> (&str, &str) {
    match s.find('?') {
        Some(i) => s.split_at(i),
        None => (s, ""),
    }
}

/// RFC 3986 §5.2.4 on an absolute path: "." and ".." segments removed,
/// ".." never climbing above the root, a trailing "." or ".." leaving a
/// trailing "/".
fn remove_dot_segments(path: &str) -> String {
    if path.is_empty() {
        return String::new();
    }
    let segments: Vec<&str> = path.split('/').collect();
    // The first segment is the empty one before the leading '/'.
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *seg {
            "." => {}
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
            }
            s => {
                out.push(s);
                continue;
            }
        }
        if last {
            out.push("");
        }
    }
    let joined = out.join("/");
    if joined.starts_with('/') || !path.starts_with('/') {
        joined
    } else {
        format!("/{joined}")
    }
}

fn open_file(path: &Path, offset: u64, expected_len: Option<u64>) -> Result<File, FetchError> {
    let file_err = |source| FetchError::File {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(file_err)?;
    let len = file_len(&file, path)?;
    if let Some(expected) = expected_len {
        if expected != len {
            return Err(FetchError::LengthMismatch {
                what: path.display().to_string(),
                expected,
                actual: len,
            });
        }
    }
    // Seeking past the end would succeed and read nothing, which downstream
    // looks like a truncated payload; say what actually happened instead.
    if offset > len {
        return Err(FetchError::OffsetBeyondEnd {
            what: path.display().to_string(),
            offset,
            len,
        });
    }
    file.seek(SeekFrom::Start(offset)).map_err(file_err)?;
    Ok(file)
}

fn file_len(file: &File, path: &Path) -> Result<u64, FetchError> {
    file.metadata()
        .map(|m| m.len())
        .map_err(|source| FetchError::File {
            path: path.to_owned(),
            source,
        })
}

/// One response, checked: its body from the requested offset on, the total
/// size if the server told it, and the validator to compare on reconnects.
struct Response {
    body: Box<dyn Read + Send>,
    total: Option<u64>,
    validator: Option<String>,
}

/// The resuming HTTP reader behind [`open`].
struct HttpReader {
    agent: ureq::Agent,
    url: String,
    /// Absolute offset of the next byte handed to the caller.
    pos: u64,
    /// Absolute end of the document, when known (server or caller).
    end: Option<u64>,
    /// Absolute end of the range asked for, if not the document's end.
    stop: Option<u64>,
    validator: Option<String>,
    body: Option<Box<dyn Read + Send>>,
    retries: u32,
    /// Consecutive failed attempts since bytes last arrived.
    failures: u32,
    backoff: Duration,
}

impl HttpReader {
    /// `range`: the first byte, and the end of the range (exclusive) or
    /// `None` for the rest of the document.
    fn open(
        agent: &ureq::Agent,
        url: &str,
        range: (u64, Option<u64>),
        expected_len: Option<u64>,
        opts: &FetchOptions,
        backoff: Duration,
    ) -> Result<HttpReader, FetchError> {
        if has_prefix_ignore_case(url, "https://") {
            return Err(FetchError::TlsUnsupported {
                url: url.to_owned(),
            });
        }
        let (offset, stop) = range;
        let response = request(agent, url, offset, stop)?;
        let end = match (response.total, expected_len) {
            (Some(total), Some(expected)) if total != expected => {
                return Err(FetchError::LengthMismatch {
                    what: url.to_owned(),
                    expected,
                    actual: total,
                });
            }
            (total, expected) => total.or(expected),
        };
        if let Some(end) = end {
            if offset > end {
                return Err(FetchError::OffsetBeyondEnd {
                    what: url.to_owned(),
                    offset,
                    len: end,
                });
            }
        }
        Ok(HttpReader {
            agent: agent.clone(),
            url: url.to_owned(),
            pos: offset,
            end,
            stop,
            validator: response.validator,
            body: Some(response.body),
            retries: opts.retries,
            failures: 0,
            backoff,
        })
    }

    /// Replaces the broken connection with one that continues at `pos`, or
    /// fails with the error the caller of `read` sees.
    fn reconnect(&mut self, mut cause: String, mut kind: io::ErrorKind) -> io::Result<()> {
        self.body = None;
        loop {
            if self.failures >= self.retries {
                return Err(io::Error::new(
                    kind,
                    format!(
                        "{}: download failed at byte {}: {cause} (gave up after {} reconnect attempts)",
                        self.url, self.pos, self.retries
                    ),
                ));
            }
            self.failures += 1;
            eprintln!(
                "update-engine: download interrupted at byte {} ({cause}), resuming (attempt {}/{})",
                self.pos, self.failures, self.retries
            );
            let wait = self
                .backoff
                .saturating_mul(1 << (self.failures - 1).min(16))
                .min(MAX_BACKOFF);
            std::thread::sleep(wait);
            let result =
                request(&self.agent, &self.url, self.pos, self.stop).and_then(|r| self.check(r));
            match result {
                Ok(body) => {
                    self.body = Some(body);
                    return Ok(());
                }
                Err(e) if e.is_transient() => {
                    cause = e.to_string();
                    kind = e.io_kind();
                }
                Err(e) => {
                    return Err(io::Error::new(
                        e.io_kind(),
                        format!("resuming at byte {}: {e}", self.pos),
                    ));
                }
            }
        }
    }

    /// A resumed response must continue the same document.
    fn check(&self, response: Response) -> Result<Box<dyn Read + Send>, FetchError> {
        if let (Some(end), Some(total)) = (self.end, response.total) {
            if end != total {
                return Err(FetchError::LengthMismatch {
                    what: self.url.clone(),
                    expected: end,
                    actual: total,
                });
            }
        }
        if let (Some(before), Some(after)) = (&self.validator, &response.validator) {
            if before != after {
                return Err(FetchError::Changed {
                    url: self.url.clone(),
                    before: before.clone(),
                    after: after.clone(),
                });
            }
        }
        Ok(response.body)
    }
}

impl Read for HttpReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let limit = match (self.end, self.stop) {
                (Some(end), Some(stop)) => Some(end.min(stop)),
                (end, stop) => end.or(stop),
            };
            let remaining = limit.map(|end| end.saturating_sub(self.pos));
            if remaining == Some(0) {
                return Ok(0);
            }
            // Never read past the known end: a server sending more than it
            // announced is not allowed to grow the payload.
            let want = remaining.map_or(buf.len(), |r| {
                buf.len().min(usize::try_from(r).unwrap_or(usize::MAX))
            });
            let Some(body) = self.body.as_mut() else {
                // Only reachable after a failed reconnect was reported and
                // the caller reads again; try once more rather than panic.
                self.reconnect("previous attempt failed".into(), io::ErrorKind::Other)?;
                continue;
            };
            match body.read(&mut buf[..want]) {
                Ok(0) => match remaining {
                    None => return Ok(0),
                    Some(r) => self.reconnect(
                        format!("connection closed {r} bytes before the end"),
                        io::ErrorKind::UnexpectedEof,
                    )?,
                },
                Ok(n) => {
                    self.pos += n as u64;
                    self.failures = 0;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.reconnect(e.to_string(), e.kind())?,
            }
        }
    }
}

/// Sends one GET for `url` from `offset` on (up to `stop`, exclusive, when
/// given) and checks the answer.
fn request(
    agent: &ureq::Agent,
    url: &str,
    offset: u64,
    stop: Option<u64>,
) -> Result<Response, FetchError> {
    let mut req = agent.get(url);
    let ranged = match stop {
        // An empty range cannot be written as a byte range; never asked for.
        Some(stop) => {
            req = req.header(
                "Range",
                format!("bytes={offset}-{}", stop.max(offset + 1) - 1),
            );
            true
        }
        None if offset > 0 => {
            req = req.header("Range", format!("bytes={offset}-"));
            true
        }
        None => false,
    };
    let response = req.call().map_err(|source| match source {
        ureq::Error::BadUri(reason) => FetchError::BadUrl {
            url: url.to_owned(),
            reason,
        },
        ureq::Error::Http(e) => FetchError::BadUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        },
        source => FetchError::Http {
            url: url.to_owned(),
            source,
        },
    })?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let validator = header("etag").or_else(|| header("last-modified"));
    let content_range = header("content-range");
    let status = response.status();
    let total = match status.as_u16() {
        200 if ranged => {
            return Err(FetchError::RangeIgnored {
                url: url.to_owned(),
                offset,
            });
        }
        200 => response.body().content_length(),
        206 => {
            let cr = content_range.unwrap_or_default();
            match parse_content_range(&cr) {
                Some((start, total)) if start == offset => total,
                _ => {
                    return Err(FetchError::BadContentRange {
                        url: url.to_owned(),
                        offset,
                        content_range: cr,
                    });
                }
            }
        }
        // Resuming a download that had in fact reached the end: the server
        // says the document is exactly `offset` bytes long, so nothing is
        // left to read. Anything else unsatisfiable is an error.
        416 if stop.is_none()
            && content_range
                .as_deref()
                .and_then(|cr| cr.strip_prefix("bytes */"))
                .and_then(|n| n.trim().parse::<u64>().ok())
                == Some(offset) =>
        {
            return Ok(Response {
                body: Box::new(io::empty()),
                total: Some(offset),
                validator,
            });
        }
        _ => {
            return Err(FetchError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
                reason: status.canonical_reason().unwrap_or("").to_owned(),
            });
        }
    };
    Ok(Response {
        body: Box::new(response.into_body().into_reader()),
        total,
        validator,
    })
}

/// "bytes START-LAST/TOTAL" → (START, Some(TOTAL)); TOTAL may be "*".
#[doc(hidden)] // public for the fuzz targets
pub fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, last) = range.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let last: u64 = last.trim().parse().ok()?;
    if last < start {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse::<u64>().ok()?),
    };
    if total.is_some_and(|t| last >= t) {
        return None;
    }
    Some((start, total))
}

/// Time as the rate limiter sees it; a trait so tests can run it on a fake
/// clock and assert exact waits instead of measuring wall time.
trait Clock: Send {
    /// Time since some fixed start.
    fn now(&self) -> Duration;
    fn sleep(&mut self, d: Duration);
}

struct SystemClock(Instant);

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// A token bucket, with bytes as tokens.
///
/// It starts empty and may go into debt: a read is delivered at once and
/// then paid for by sleeping until the balance is back at zero. That keeps
/// the long-run rate exact without knowing in advance how many bytes a read
/// will return. The capacity (the burst allowed after an idle period) is one
/// step of [`TokenBucket::step`].
struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Duration,
    clock: Box<dyn Clock>,
}

impl TokenBucket {
    fn new(rate: u64, clock: Box<dyn Clock>) -> TokenBucket {
        let last = clock.now();
        let mut bucket = TokenBucket {
            rate: rate as f64,
            capacity: 0.0,
            tokens: 0.0,
            last,
            clock,
        };
        bucket.capacity = bucket.step() as f64;
        bucket
    }

    /// The most one read may fetch: about 1/20 s worth of bytes (so the
    /// stream is smooth, not bursts a second apart), at least 1 byte, at
    /// most 64 KiB (so fast links still use few, large reads).
    fn step(&self) -> usize {
        ((self.rate / 20.0) as usize).clamp(1, 64 * 1024)
    }

    /// Accounts for `n` bytes delivered, sleeping off any debt.
    fn consume(&mut self, n: usize) {
        let now = self.clock.now();
        let elapsed = now.saturating_sub(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.tokens -= n as f64;
        if self.tokens < 0.0 {
            // The refill on the next call credits the time slept, bringing
            // the balance back to about zero.
            self.clock
                .sleep(Duration::from_secs_f64(-self.tokens / self.rate));
        }
    }
}

/// Applies a [`TokenBucket`] to a reader.
struct Throttled<R> {
    inner: R,
    bucket: TokenBucket,
}

impl<R: Read> Read for Throttled<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min(self.bucket.step());
        let n = self.inner.read(&mut buf[..want])?;
        self.bucket.consume(n);
        Ok(n)
    }
}

/// Checks and normalises one endpoint or base URL: `http://host[:port][/path]`
/// without a trailing `/`. https is refused by name: the engine carries no
/// TLS stack yet (as for feeds). Used for lock servers' URLs.
pub fn check_http_url(what: &str, url: &str) -> Result<String, String> {
    let url = url.trim();
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err(format!(
            "{what} {url}: https is not supported yet (no TLS in the engine); \
             use http:// on a private network"
        ));
    }
    let Some(rest) = lower.strip_prefix("http://") else {
        return Err(format!("{what} {url:?}: not an http:// URL"));
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{what} {url:?}: no host"));
    }
    // A URL carries spaces and control characters only percent-encoded.
    // Refused rather than passed on: a stray one (a tab before a comment,
    // a pasted NUL) would otherwise reach every request, or survive the
    // trimming of a trailing `/` (found by the `fetch_headers` fuzz target:
    // `http://h/x /` gave `http://h/x `).
    if let Some((at, c)) = url
        .char_indices()
        .find(|(_, c)| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{what} {url:?}: {c:?} at byte {at}: a URL cannot contain spaces or control \
             characters (percent-encode them)"
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    fn url(base: &str, reference: &str) -> String {
        match resolve(&Source::Url(base.into()), reference) {
            Source::Url(u) => u,
            other => panic!("expected a URL, got {other:?}"),
        }
    }

    #[test]
    fn a_path_that_reads_like_a_url_is_described_as_a_file() {
        for text in ["file://http://h/x", "file://FILE://y", "/var/p", "http://h/p"] {
            let source = Source::parse(text);
            assert_eq!(Source::parse(&source.describe()), source, "{text}");
        }
        assert_eq!(Source::parse("/var/p").describe(), "/var/p");
    }

    #[test]
    fn endpoint_urls_with_spaces_or_control_characters_are_refused() {
        assert_eq!(
            check_http_url("server", " http://h:2379/ ").as_deref(),
            Ok("http://h:2379")
        );
        let err = check_http_url("server", "http://h/x /").unwrap_err();
        assert!(err.contains("' ' at byte 10"), "{err}");
        let err = check_http_url("FleetLock URL", "http://h\0/").unwrap_err();
        assert!(err.contains("FleetLock URL") && err.contains("byte 8"), "{err}");
        assert!(check_http_url("server", "http://h/a\tb").is_err());
    }

    #[test]
    fn parse_and_describe() {
        assert_eq!(
            Source::parse("http://h/feed.json"),
            Source::Url("http://h/feed.json".into())
        );
        assert_eq!(
            Source::parse("HTTPS://h/x"),
            Source::Url("HTTPS://h/x".into())
        );
        assert_eq!(
            Source::parse("/srv/feed.json"),
            Source::File("/srv/feed.json".into())
        );
        assert_eq!(
            Source::parse("file:///srv/feed.json"),
            Source::File("/srv/feed.json".into())
        );
        assert_eq!(Source::parse("feed.json").describe(), "feed.json");
        assert_eq!(Source::parse("http://h/f").describe(), "http://h/f");
    }

    #[test]
    fn resolve_urls() {
        let base = "http://updates.example:8080/boards/pc/feed.json?x=1#top";
        assert_eq!(
            url(base, "../payloads/x.payload"),
            "http://updates.example:8080/boards/payloads/x.payload"
        );
        assert_eq!(
            url(base, "payloads/x"),
            "http://updates.example:8080/boards/pc/payloads/x"
        );
        assert_eq!(
            url(base, "./a/./b/../c"),
            "http://updates.example:8080/boards/pc/a/c"
        );
        assert_eq!(
            url(base, "../../../../etc"),
            "http://updates.example:8080/etc"
        );
        assert_eq!(url(base, "/p/q"), "http://updates.example:8080/p/q");
        assert_eq!(url(base, "//mirror/p/../q"), "http://mirror/q");
        assert_eq!(
            url(base, "?y=2"),
            "http://updates.example:8080/boards/pc/feed.json?y=2"
        );
        assert_eq!(
            url(base, ""),
            "http://updates.example:8080/boards/pc/feed.json?x=1"
        );
        assert_eq!(
            url(base, "x.payload?sig=abc#frag"),
            "http://updates.example:8080/boards/pc/x.payload?sig=abc"
        );
        assert_eq!(url(base, ".."), "http://updates.example:8080/boards/");
        assert_eq!(url(base, "."), "http://updates.example:8080/boards/pc/");
        assert_eq!(url(base, "http://other/x"), "http://other/x");
        // No path in the base: the reference hangs off the root.
        assert_eq!(url("http://h", "a/b"), "http://h/a/b");
        assert_eq!(url("http://h?q", "a"), "http://h/a");
        assert_eq!(url("http://h/dir/", "a"), "http://h/dir/a");
    }

    #[test]
    fn resolve_files() {
        let base = Source::File("/srv/updates/pc/feed.json".into());
        assert_eq!(
            resolve(&base, "../payloads/x.payload"),
            Source::File("/srv/updates/pc/../payloads/x.payload".into())
        );
        assert_eq!(
            resolve(&base, "payloads/x"),
            Source::File("/srv/updates/pc/payloads/x".into())
        );
        assert_eq!(resolve(&base, "/abs/x"), Source::File("/abs/x".into()));
        assert_eq!(
            resolve(&base, "file:///abs/x"),
            Source::File("/abs/x".into())
        );
        assert_eq!(
            resolve(&base, "http://h/x"),
            Source::Url("http://h/x".into())
        );
        // A bare file name as the base: relative to the working directory.
        assert_eq!(
            resolve(&Source::File("feed.json".into()), "x"),
            Source::File("x".into())
        );
    }

    #[test]
    fn content_range_parsing() {
        assert_eq!(parse_content_range("bytes 5-9/10"), Some((5, Some(10))));
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("bytes 5-10/10"), None);
        assert_eq!(parse_content_range("bytes 9-5/10"), None);
        assert_eq!(parse_content_range("items 1-2/3"), None);
        assert_eq!(parse_content_range(""), None);
    }

    /// A clock that only moves when slept on, recording the total.
    struct FakeClock(Arc<Mutex<Duration>>);

    impl Clock for FakeClock {
        fn now(&self) -> Duration {
            *self.0.lock().unwrap()
        }
        fn sleep(&mut self, d: Duration) {
            *self.0.lock().unwrap() += d;
        }
    }

    fn fake_bucket(rate: u64) -> (TokenBucket, Arc<Mutex<Duration>>) {
        let time = Arc::new(Mutex::new(Duration::ZERO));
        (
            TokenBucket::new(rate, Box::new(FakeClock(time.clone()))),
            time,
        )
    }

    fn close(a: Duration, b: f64) -> bool {
        (a.as_secs_f64() - b).abs() < 1e-6
    }

    #[test]
    fn token_bucket_paces_exactly() {
        let (mut bucket, time) = fake_bucket(1 << 20);
        // 1 MiB at 1 MiB/s: the step is ~52 KiB, so it takes many reads...
        assert_eq!(bucket.step(), (1 << 20) / 20);
        let mut left = 1usize << 20;
        let mut reads = 0;
        while left > 0 {
            let n = left.min(bucket.step());
            // ...and each read is paid for before the next starts: the
            // clock never runs more than one step ahead of the rate.
            bucket.consume(n);
            left -= n;
            reads += 1;
            let delivered = (1usize << 20) - left;
            assert!(
                time.lock().unwrap().as_secs_f64() * (1 << 20) as f64 >= delivered as f64 - 1.0
            );
        }
        assert!(reads >= 20);
        assert!(close(*time.lock().unwrap(), 1.0));
    }

    #[test]
    fn token_bucket_bursts_at_most_one_step_after_idling() {
        let (mut bucket, time) = fake_bucket(1000);
        assert_eq!(bucket.step(), 50);
        *time.lock().unwrap() += Duration::from_secs(100); // idle
        bucket.consume(50); // covered by the saved-up step
        assert!(close(*time.lock().unwrap(), 100.0));
        bucket.consume(100); // not covered: 0.1 s
        assert!(close(*time.lock().unwrap(), 100.1));
    }

    #[test]
    fn token_bucket_slow_rates_step_one_byte() {
        let (mut bucket, time) = fake_bucket(3);
        assert_eq!(bucket.step(), 1);
        for _ in 0..6 {
            bucket.consume(1);
        }
        assert!(close(*time.lock().unwrap(), 2.0));
    }

    fn test_data(len: usize) -> Vec<u8> {
        // Not periodic at any small stride, so a resume at the wrong offset
        // cannot go unnoticed.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn rate_limited_file_read_is_paced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        let data = test_data(256 * 1024);
        std::fs::write(&path, &data).unwrap();
        let opts = FetchOptions {
            rate_limit: Some(1 << 20),
            ..FetchOptions::default()
        };
        let start = Instant::now();
        let mut r = open(&Source::File(path), 0, Some(data.len() as u64), &opts).unwrap();
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert_eq!(got, data);
        // A quarter of a second's worth; only the lower bound is reliable.
        assert!(
            start.elapsed() >= Duration::from_millis(200),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn files_from_offset_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        let data = test_data(10_000);
        std::fs::write(&path, &data).unwrap();
        let src = Source::File(path.clone());
        let opts = FetchOptions::default();
        let mut got = Vec::new();
        open(&src, 1234, Some(10_000), &opts)
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, data[1234..]);

        let err = open(&src, 0, Some(9_999), &opts).err().unwrap();
        assert!(matches!(err, FetchError::LengthMismatch { .. }), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()));
        let err = open(&src, 10_001, None, &opts).err().unwrap();
        assert!(matches!(err, FetchError::OffsetBeyondEnd { .. }), "{err}");
        let missing = Source::File(dir.path().join("missing"));
        let err = open(&missing, 0, None, &opts).err().unwrap();
        assert!(err.to_string().contains("missing"), "{err}");

        assert_eq!(get_small(&src, 10_000, &opts).unwrap(), data);
        let err = get_small(&src, 9_999, &opts).unwrap_err();
        assert!(matches!(err, FetchError::TooLarge { .. }), "{err}");
    }

    /// What the test server does with each request.
    #[derive(Clone, Default)]
    struct Behaviour {
        /// Close the connection after this many body bytes...
        cut_after: Option<usize>,
        /// ...on this many first connections.
        cut_connections: usize,
        /// Answer every request with the whole document and 200.
        ignore_range: bool,
        /// Send no Content-Length (the body ends when the connection does).
        no_length: bool,
        /// Answer with this status and an empty body.
        status: Option<u16>,
        /// Per-connection ETags, the last one repeating.
        etags: Vec<&'static str>,
    }

    struct TestServer {
        url: String,
        /// The Range header of each request, in order.
        ranges: Arc<Mutex<Vec<Option<String>>>>,
    }

    /// A minimal HTTP/1.1 server, one request per connection, for the
    /// client's failure paths that a real server will not produce on cue.
    fn serve(data: Vec<u8>, behaviour: Behaviour) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/payload", listener.local_addr().unwrap());
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let log = ranges.clone();
        let data = Arc::new(data);
        let connections = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let index = connections.fetch_add(1, Ordering::SeqCst);
                let (data, b, log) = (data.clone(), behaviour.clone(), log.clone());
                std::thread::spawn(move || {
                    let _ = answer(stream, index, &data, &b, &log);
                });
            }
        });
        TestServer { url, ranges }
    }

    fn answer(
        mut stream: TcpStream,
        index: usize,
        data: &[u8],
        b: &Behaviour,
        log: &Mutex<Vec<Option<String>>>,
    ) -> io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut range = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("range") {
                    range = Some(value.trim().to_owned());
                }
            }
        }
        log.lock().unwrap().push(range.clone());
        let etag = b
            .etags
            .get(index)
            .or(b.etags.last())
            .map(|e| format!("ETag: {e}\r\n"))
            .unwrap_or_default();
        if let Some(status) = b.status {
            write!(
                stream,
                "HTTP/1.1 {status} Nope\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            return Ok(());
        }
        // "bytes=N-" or "bytes=N-M" (M inclusive).
        let (start, last) = match (&range, b.ignore_range) {
            (Some(r), false) => {
                let (a, z) = r
                    .strip_prefix("bytes=")
                    .and_then(|r| r.split_once('-'))
                    .expect("the client sends bytes=N- or bytes=N-M");
                let last = z.parse::<usize>().ok().map(|z| z.min(data.len() - 1));
                (a.parse::<usize>().unwrap(), last)
            }
            _ => (0, None),
        };
        if start >= data.len() && range.is_some() && !b.ignore_range {
            write!(
                stream,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                data.len()
            )?;
            return Ok(());
        }
        let end = last.map_or(data.len(), |z| z + 1);
        let body = &data[start..end];
        let mut head = if start > 0 || last.is_some() {
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{}\r\n",
                end - 1,
                data.len()
            )
        } else {
            "HTTP/1.1 200 OK\r\n".to_owned()
        };
        if !b.no_length {
            head += &format!("Content-Length: {}\r\n", body.len());
        }
        head += &etag;
        head += "Connection: close\r\n\r\n";
        stream.write_all(head.as_bytes())?;
        let send = match b.cut_after {
            Some(cut) if index < b.cut_connections => &body[..cut.min(body.len())],
            _ => body,
        };
        stream.write_all(send)?;
        stream.flush()?;
        stream.shutdown(Shutdown::Both)
    }

    fn quick() -> FetchOptions {
        FetchOptions {
            timeout: Duration::from_secs(10),
            ..FetchOptions::default()
        }
    }

    fn read_all(
        url: &str,
        offset: u64,
        expected: Option<u64>,
        opts: &FetchOptions,
    ) -> io::Result<Vec<u8>> {
        let mut r = open_with_backoff(
            &Source::Url(url.into()),
            offset,
            expected,
            opts,
            Duration::from_millis(10),
        )
        .map_err(io::Error::other)?;
        let mut got = Vec::new();
        r.read_to_end(&mut got)?;
        Ok(got)
    }

    /// The error of reading `url` in full, which must fail (no
    /// `expect_err`: it would print the whole body read).
    fn read_fails(url: &str, opts: &FetchOptions) -> io::Error {
        match read_all(url, 0, None, opts) {
            Ok(got) => panic!("read {} bytes, expected an error", got.len()),
            Err(e) => e,
        }
    }

    #[test]
    fn http_whole_and_from_offset() {
        let data = test_data(300_000);
        let server = serve(data.clone(), Behaviour::default());
        assert_eq!(read_all(&server.url, 0, None, &quick()).unwrap(), data);
        assert_eq!(
            read_all(&server.url, 123_457, Some(300_000), &quick()).unwrap(),
            data[123_457..]
        );
        // Resuming a download that was already complete reads nothing.
        assert!(read_all(&server.url, 300_000, Some(300_000), &quick())
            .unwrap()
            .is_empty());
        assert_eq!(
            *server.ranges.lock().unwrap(),
            [
                None,
                Some("bytes=123457-".into()),
                Some("bytes=300000-".into())
            ]
        );
        assert_eq!(
            get_small(&Source::Url(server.url.clone()), 300_000, &quick()).unwrap(),
            data
        );
        let err = get_small(&Source::Url(server.url.clone()), 299_999, &quick()).unwrap_err();
        assert!(matches!(err, FetchError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn http_resumes_after_cuts_with_identical_bytes() {
        let data = test_data(300_000);
        let server = serve(
            data.clone(),
            Behaviour {
                cut_after: Some(70_001),
                cut_connections: 3,
                ..Behaviour::default()
            },
        );
        // Only 1 retry: the budget counts consecutive failures, and every
        // resumed connection makes progress.
        let opts = FetchOptions {
            retries: 1,
            ..quick()
        };
        assert_eq!(read_all(&server.url, 0, None, &opts).unwrap(), data);
        assert_eq!(
            *server.ranges.lock().unwrap(),
            [
                None,
                Some("bytes=70001-".into()),
                Some("bytes=140002-".into()),
                Some("bytes=210003-".into()),
            ]
        );
    }

    #[test]
    fn http_resumes_without_content_length_when_length_is_expected() {
        let data = test_data(100_000);
        let server = serve(
            data.clone(),
            Behaviour {
                cut_after: Some(40_000),
                cut_connections: 1,
                no_length: true,
                ..Behaviour::default()
            },
        );
        // Without a length from anyone the early close would look like the
        // end; the length from the feed tells it apart.
        assert_eq!(
            read_all(&server.url, 0, Some(100_000), &quick()).unwrap(),
            data
        );
        assert_eq!(server.ranges.lock().unwrap().len(), 2);
    }

    #[test]
    fn http_gives_up_after_retries_naming_url_and_offset() {
        let data = test_data(50_000);
        let server = serve(
            data,
            Behaviour {
                cut_after: Some(0),
                cut_connections: 1,
                ..Behaviour::default()
            },
        );
        let mut r = open_with_backoff(
            &Source::Url(server.url.clone()),
            0,
            None,
            &FetchOptions {
                retries: 0,
                ..quick()
            },
            Duration::from_millis(10),
        )
        .unwrap();
        let err = r.read_to_end(&mut Vec::new()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&server.url) && msg.contains("at byte 0"),
            "{msg}"
        );

        // Every connection cut before its first byte: no progress, so the
        // budget of 2 runs out and 3 requests were made in all.
        let data = test_data(50_000);
        let server = serve(
            data,
            Behaviour {
                cut_after: Some(0),
                cut_connections: usize::MAX,
                ..Behaviour::default()
            },
        );
        let opts = FetchOptions {
            retries: 2,
            ..quick()
        };
        let err = read_fails(&server.url, &opts);
        assert!(err.to_string().contains("gave up after 2"), "{err}");
        assert_eq!(server.ranges.lock().unwrap().len(), 3);
    }

    #[test]
    fn http_range_ignored_is_an_error() {
        let data = test_data(50_000);
        let server = serve(
            data.clone(),
            Behaviour {
                ignore_range: true,
                cut_after: Some(10_000),
                // The first connection is the ranged open just below.
                cut_connections: 2,
                ..Behaviour::default()
            },
        );
        let src = Source::Url(server.url.clone());
        let err = open(&src, 100, None, &quick()).err().unwrap();
        assert!(
            matches!(err, FetchError::RangeIgnored { offset: 100, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("server ignored the Range request"));
        assert!(err.to_string().contains(&server.url));
        // Mid-stream: the resume after the cut meets the same refusal and
        // the read fails instead of splicing in bytes from 0.
        let err = read_fails(&server.url, &quick());
        assert!(
            err.to_string().contains("server ignored the Range request"),
            "{err}"
        );
        assert!(err.to_string().contains("at byte 10000"), "{err}");
    }

    #[test]
    fn ranges_ask_for_exactly_their_bytes_and_resume_inside_them() {
        let data = test_data(300_000);
        let server = serve(
            data.clone(),
            Behaviour {
                cut_after: Some(20_000),
                cut_connections: 1,
                ..Behaviour::default()
            },
        );
        let mut ranges = Ranges::new(&Source::Url(server.url.clone()), 300_000, &quick());
        ranges.backoff = Duration::from_millis(10);
        let read = |start, end| {
            let mut got = Vec::new();
            ranges
                .open(start, end)
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            got
        };
        // Cut after 20000 bytes: resumed at 120000, still ending at 149999.
        assert_eq!(read(100_000, 150_000), data[100_000..150_000]);
        assert_eq!(read(0, 32), data[..32]);
        assert_eq!(read(299_999, 300_000), data[299_999..]);
        assert!(read(5, 5).is_empty());
        assert_eq!(
            *server.ranges.lock().unwrap(),
            [
                Some("bytes=100000-149999".into()),
                Some("bytes=120000-149999".into()),
                Some("bytes=0-31".into()),
                Some("bytes=299999-299999".into()),
            ]
        );
        let err = ranges.open(10, 300_001).err().unwrap();
        assert!(matches!(err, FetchError::OffsetBeyondEnd { .. }), "{err}");

        // A file works the same way.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        std::fs::write(&path, &data).unwrap();
        let files = Ranges::new(&Source::File(path), 300_000, &quick());
        let mut got = Vec::new();
        files
            .open(7, 70_007)
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, data[7..70_007]);
    }

    #[test]
    fn ranges_from_a_server_that_ignores_them_are_refused() {
        let server = serve(
            test_data(50_000),
            Behaviour {
                ignore_range: true,
                ..Behaviour::default()
            },
        );
        let ranges = Ranges::new(&Source::Url(server.url.clone()), 50_000, &quick());
        // Even from byte 0: a bounded range answered with 200 is the whole
        // document, not the 32 bytes asked for.
        let err = ranges.open(0, 32).err().unwrap();
        assert!(matches!(err, FetchError::RangeIgnored { .. }), "{err}");
        // A server reporting another size than the feed's is refused.
        let server = serve(test_data(50_000), Behaviour::default());
        let ranges = Ranges::new(&Source::Url(server.url.clone()), 60_000, &quick());
        let err = ranges.open(0, 32).err().unwrap();
        assert!(matches!(err, FetchError::LengthMismatch { .. }), "{err}");
    }

    #[test]
    fn http_refuses_a_file_that_changed_between_connections() {
        let server = serve(
            test_data(50_000),
            Behaviour {
                cut_after: Some(10_000),
                cut_connections: 1,
                etags: vec!["\"a\"", "\"b\""],
                ..Behaviour::default()
            },
        );
        let err = read_fails(&server.url, &quick());
        assert!(err.to_string().contains("changed on the server"), "{err}");
    }

    #[test]
    fn http_errors_name_url_and_status() {
        let server = serve(
            Vec::new(),
            Behaviour {
                status: Some(404),
                ..Behaviour::default()
            },
        );
        let src = Source::Url(server.url.clone());
        let err = open(&src, 0, None, &quick()).err().unwrap();
        assert!(
            matches!(err, FetchError::Status { status: 404, .. }),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!("{}: HTTP 404 Not Found", server.url)
        );

        let server = serve(test_data(10), Behaviour::default());
        let src = Source::Url(server.url.clone());
        let err = open(&src, 0, Some(11), &quick()).err().unwrap();
        assert!(matches!(err, FetchError::LengthMismatch { .. }), "{err}");
        let err = open(&src, 11, None, &quick()).err().unwrap();
        assert!(
            matches!(err, FetchError::Status { status: 416, .. }),
            "{err}"
        );

        let err = open(
            &Source::parse("https://example.invalid/x"),
            0,
            None,
            &quick(),
        )
        .err()
        .unwrap();
        assert!(matches!(err, FetchError::TlsUnsupported { .. }), "{err}");
        assert!(err.to_string().contains("https://example.invalid/x"));

        // Nothing listens on a port just freed.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dead = format!("http://127.0.0.1:{port}/x");
        let err = open(&Source::Url(dead.clone()), 0, None, &quick())
            .err()
            .unwrap();
        assert!(err.to_string().contains(&dead), "{err}");
    }
}
