//! `cargo xtask serve-updates DIR`: a static file server for a published
//! update directory (release feeds and payloads), for tests and demos.
//!
//! Deliberately small and std-only: a thread per connection, one request
//! per connection (`Connection: close`), GET and HEAD, single byte ranges.
//! That is exactly what the update engine's HTTP client needs, and keeping
//! it in-tree means the VM tests need no web server on the host. It is not
//! meant to face the internet; production feeds live on any ordinary HTTP
//! server or object store.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

/// Where the server listens unless told otherwise.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// A client that sends nothing for this long is dropped, so a stalled
/// connection cannot pin a thread forever.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest request head accepted; ours are a few hundred bytes.
const MAX_HEAD: u64 = 16 * 1024;

#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The published update directory; nothing outside it is served.
    pub dir: PathBuf,
    /// Port 0 picks a free port (see [`Server::addr`]).
    pub addr: SocketAddr,
    /// One line per request on stdout: method, path, status, body bytes.
    pub log: bool,
    /// For tests only: close the connection after this many body bytes of
    /// the first payload response, to prove the client resumes. A payload
    /// response is a GET answered with a body longer than `cut_after`, of a
    /// file not named `*.json` (so the feed is never the one cut).
    pub cut_after: Option<u64>,
}

impl ServeOptions {
    /// `dir` on [`DEFAULT_ADDR`], logging, no cut.
    pub fn new(dir: impl Into<PathBuf>) -> ServeOptions {
        ServeOptions {
            dir: dir.into(),
            addr: DEFAULT_ADDR,
            log: true,
            cut_after: None,
        }
    }
}

/// What the connection threads share.
struct Shared {
    /// Canonical form of `ServeOptions::dir`: the prefix every served file's
    /// canonical path must have.
    root: PathBuf,
    log: bool,
    cut_after: Option<u64>,
    /// Set once the one cut has happened.
    cut_done: AtomicBool,
    bytes_served: AtomicU64,
    stopping: AtomicBool,
}

/// A running server; stopped by [`Server::stop`] or when dropped.
pub struct Server {
    /// The address actually bound (the real port when 0 was asked for).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .field("root", &self.shared.root)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds, starts accepting on a thread of its own, and returns.
    pub fn start(opts: ServeOptions) -> Result<Server> {
        let root = opts
            .dir
            .canonicalize()
            .with_context(|| format!("update directory {}", opts.dir.display()))?;
        anyhow::ensure!(root.is_dir(), "{} is not a directory", opts.dir.display());
        let listener =
            TcpListener::bind(opts.addr).with_context(|| format!("binding {}", opts.addr))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let shared = Arc::new(Shared {
            root,
            log: opts.log,
            cut_after: opts.cut_after,
            cut_done: AtomicBool::new(false),
            bytes_served: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
        });
        let accept_shared = shared.clone();
        let accept = std::thread::Builder::new()
            .name("serve-updates".into())
            .spawn(move || accept_loop(listener, accept_shared))
            .context("spawning the accept thread")?;
        Ok(Server {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// The base URL, for feeds and the engine's configuration. A wildcard
    /// bind address is given as 127.0.0.1, the address that reaches it from
    /// this host.
    pub fn url(&self) -> String {
        format!("http://{}", connectable(self.addr))
    }

    /// Body bytes sent so far, over all responses.
    pub fn bytes_served(&self) -> u64 {
        self.shared.bytes_served.load(Ordering::Relaxed)
    }

    /// Stops accepting and waits for the accept thread. Responses in flight
    /// run to completion on their own threads.
    pub fn stop(self) {
        // Drop does the work, so a server that is merely dropped (a failed
        // test) does not keep its port.
    }

    fn shutdown(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // `accept` blocks; a connection of our own wakes it to see the flag.
        let _ = TcpStream::connect_timeout(&connectable(self.addr), Duration::from_secs(1));
        let _ = accept.join();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// `addr` with a wildcard IP replaced by the loopback of its family.
fn connectable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// Serves `opts.dir` in the foreground until the process is killed.
pub fn run(opts: ServeOptions) -> Result<()> {
    let dir = opts.dir.clone();
    let mut server = Server::start(opts)?;
    println!(
        "serving {} on {}/ (ctrl-c to stop)",
        dir.display(),
        server.url()
    );
    if let Some(accept) = server.accept.take() {
        let _ = accept.join();
    }
    Ok(())
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        match stream {
            Ok(stream) => {
                let shared = shared.clone();
                let spawned = std::thread::Builder::new()
                    .name("serve-updates-conn".into())
                    .spawn(move || handle(stream, &shared));
                if let Err(e) = spawned {
                    eprintln!("serve-updates: cannot spawn a connection thread: {e}");
                }
            }
            Err(e) => {
                // Typically out of file descriptors; back off instead of
                // spinning on the same error.
                eprintln!("serve-updates: accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// A response decided from the request, before any byte is written.
struct Plan {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Body,
}

enum Body {
    Empty,
    /// A short text explaining an error status.
    Text(&'static str),
    /// `len` bytes of the file from `start` on.
    File {
        file: File,
        start: u64,
        len: u64,
        cuttable: bool,
    },
}

fn handle(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
    let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let (method, target, plan) = match read_head(read_half) {
        Ok(Some(head)) => {
            let plan = plan(&head, shared);
            (head.method, head.target, plan)
        }
        // The client closed without asking anything (our own wake-up in
        // `Server::shutdown`, or a port probe).
        Ok(None) => return,
        Err(_) => (
            "-".to_owned(),
            "-".to_owned(),
            error(400, "400 Bad Request\n"),
        ),
    };
    let head_only = method == "HEAD";
    let status = plan.status;
    let sent = respond(stream, plan, head_only, shared);
    if shared.log {
        println!("{method} {target} {status} {sent}");
    }
}

struct Head {
    method: String,
    target: String,
    range: Option<String>,
}

/// Reads the request line and headers (`Ok(None)` if the client sent
/// nothing at all).
fn read_head(stream: TcpStream) -> io::Result<Option<Head>> {
    let mut reader = BufReader::new(stream.take(MAX_HEAD));
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_ascii_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad request line",
        ));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "not HTTP/1.x"));
    }
    let mut head = Head {
        method: method.to_owned(),
        target: target.to_owned(),
        range: None,
    };
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            // Head cut short (or longer than MAX_HEAD).
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated request",
            ));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            return Ok(Some(head));
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("range") {
                head.range = Some(value.trim().to_owned());
            }
        }
    }
}

fn error(status: u16, text: &'static str) -> Plan {
    Plan {
        status,
        headers: vec![("Content-Type", "text/plain; charset=utf-8".into())],
        body: Body::Text(text),
    }
}

/// Decides the response to `head`: which file, which bytes, which status.
fn plan(head: &Head, shared: &Shared) -> Plan {
    if head.method != "GET" && head.method != "HEAD" {
        let mut plan = error(405, "405 Method Not Allowed\n");
        plan.headers.push(("Allow", "GET, HEAD".into()));
        return plan;
    }
    let path = match local_path(&head.target, &shared.root) {
        Ok(path) => path,
        Err(plan) => return plan,
    };
    let Ok(file) = File::open(&path) else {
        return error(404, "404 Not Found\n");
    };
    let len = match file.metadata() {
        Ok(m) if m.is_file() => m.len(),
        // Directories are not listed: a feed names its payloads.
        _ => return error(404, "404 Not Found\n"),
    };
    let is_json = path.extension().is_some_and(|e| e == "json");
    let content_type = if is_json {
        "application/json"
    } else {
        "application/octet-stream"
    };
    let mut headers = vec![
        ("Content-Type", content_type.to_owned()),
        ("Accept-Ranges", "bytes".to_owned()),
    ];
    let (status, start, count) = match head.range.as_deref().map(|r| parse_range(r, len)) {
        None | Some(RangeSpec::Ignore) => (200, 0, len),
        Some(RangeSpec::Unsatisfiable) => {
            headers.push(("Content-Range", format!("bytes */{len}")));
            return Plan {
                status: 416,
                headers,
                body: Body::Empty,
            };
        }
        Some(RangeSpec::Bytes { first, last }) => {
            headers.push(("Content-Range", format!("bytes {first}-{last}/{len}")));
            (206, first, last - first + 1)
        }
    };
    let cuttable =
        head.method == "GET" && !is_json && shared.cut_after.is_some_and(|cut| count > cut);
    Plan {
        status,
        headers,
        body: Body::File {
            file,
            start,
            len: count,
            cuttable,
        },
    }
}

/// Maps a request target to a file under `root`, or the error response.
fn local_path(target: &str, root: &Path) -> Result<PathBuf, Plan> {
    // The query string means nothing to a static server.
    let raw = target.split(['?', '#']).next().unwrap_or("");
    if !raw.starts_with('/') {
        return Err(error(400, "400 Bad Request\n"));
    }
    let Some(decoded) = percent_decode(raw) else {
        return Err(error(400, "400 Bad Request\n"));
    };
    let mut relative = PathBuf::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            // Refused outright rather than resolved: no legitimate feed
            // reference reaches the server with ".." left in it.
            ".." => return Err(error(403, "403 Forbidden\n")),
            s if s.contains(['\0', '\\']) => return Err(error(400, "400 Bad Request\n")),
            s => relative.push(s),
        }
    }
    let joined = root.join(relative);
    // Symbolic links inside DIR may point anywhere; the canonical path
    // decides. A missing file fails here, which is a plain 404.
    let Ok(canonical) = joined.canonicalize() else {
        return Err(error(404, "404 Not Found\n"));
    };
    if !canonical.starts_with(root) {
        return Err(error(403, "403 Forbidden\n"));
    }
    Ok(canonical)
}

/// `%XX` decoding; `None` for malformed escapes or a result that is not
/// UTF-8 (no published file name needs either).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    /// Not a single byte range we understand: serve the whole file, which
    /// RFC 9110 allows a server to do with any Range header.
    Ignore,
    /// A well-formed range starting at or beyond the end: 416.
    Unsatisfiable,
    /// Inclusive, clamped to the file.
    Bytes { first: u64, last: u64 },
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` against a file of `len` bytes.
fn parse_range(value: &str, len: u64) -> RangeSpec {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignore;
    };
    if spec.contains(',') {
        // Multipart responses are not worth having here.
        return RangeSpec::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Ignore;
    };
    let (a, b) = (a.trim(), b.trim());
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (a.is_empty(), b.is_empty()) {
        // bytes=-n: the last n bytes.
        (true, false) => match number(b) {
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if len == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::Bytes {
                first: len.saturating_sub(n),
                last: len - 1,
            },
            None => RangeSpec::Ignore,
        },
        (false, _) => {
            let Some(first) = number(a) else {
                return RangeSpec::Ignore;
            };
            let last = if b.is_empty() {
                None
            } else {
                match number(b) {
                    Some(last) if last >= first => Some(last),
                    _ => return RangeSpec::Ignore,
                }
            };
            if first >= len {
                return RangeSpec::Unsatisfiable;
            }
            RangeSpec::Bytes {
                first,
                last: last.map_or(len - 1, |l| l.min(len - 1)),
            }
        }
        (true, true) => RangeSpec::Ignore,
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        _ => "",
    }
}

/// Writes the response; returns the body bytes sent (also added to the
/// server's count before the connection is closed, so a client that has
/// read to the end sees them counted).
fn respond(mut stream: TcpStream, plan: Plan, head_only: bool, shared: &Shared) -> u64 {
    let content_length = match &plan.body {
        Body::Empty => 0,
        Body::Text(t) => t.len() as u64,
        Body::File { len, .. } => *len,
    };
    let mut head = format!("HTTP/1.1 {} {}\r\n", plan.status, reason(plan.status));
    for (name, value) in &plan.headers {
        head += &format!("{name}: {value}\r\n");
    }
    head += &format!("Content-Length: {content_length}\r\nConnection: close\r\n\r\n");
    let sent = if stream.write_all(head.as_bytes()).is_err() || head_only {
        0
    } else {
        match plan.body {
            Body::Empty => 0,
            Body::Text(t) => {
                if stream.write_all(t.as_bytes()).is_ok() {
                    t.len() as u64
                } else {
                    0
                }
            }
            Body::File {
                file,
                start,
                len,
                cuttable,
            } => {
                // Only the first eligible response is cut; the swap makes
                // that hold even with concurrent requests.
                let limit = match shared.cut_after {
                    Some(cut) if cuttable && !shared.cut_done.swap(true, Ordering::SeqCst) => cut,
                    _ => len,
                };
                send_file(&mut stream, file, start, limit)
            }
        }
    };
    shared.bytes_served.fetch_add(sent, Ordering::Relaxed);
    let _ = stream.flush();
    // A clean FIN after the last byte; on a cut this is what the client
    // sees as the connection ending early.
    let _ = stream.shutdown(Shutdown::Write);
    // Drain what the client may still send (say, a POST body) so that
    // closing does not turn into a reset, which can make the client's
    // kernel discard the response before the client has read it. Briefly:
    // a client that keeps the socket open is not waited for.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = io::copy(&mut (&stream).take(MAX_HEAD), &mut io::sink());
    sent
}

/// Streams `len` bytes of `file` from `start` in fixed-size pieces (payloads
/// are hundreds of MiB); returns how many reached the socket.
fn send_file(stream: &mut TcpStream, mut file: File, start: u64, len: u64) -> u64 {
    use std::io::Seek;
    if file.seek(io::SeekFrom::Start(start)).is_err() {
        return 0;
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent = 0u64;
    while sent < len {
        let want = usize::try_from(len - sent).map_or(buf.len(), |n| n.min(buf.len()));
        let n = match file.read(&mut buf[..want]) {
            Ok(0) | Err(_) => break, // file shrank under us: the client sees a short body
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).is_err() {
            break; // the client went away
        }
        sent += n as u64;
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    /// Sends a raw request and reads the reply until the server closes.
    fn ask(server: &Server, request: &str) -> Reply {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete head");
        let head = std::str::from_utf8(&raw[..split]).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.to_owned(), v.trim().to_owned())
            })
            .collect();
        Reply {
            status,
            headers,
            body: raw[split + 4..].to_vec(),
        }
    }

    fn get(server: &Server, path: &str, extra: &str) -> Reply {
        ask(
            server,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n"),
        )
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// A published directory: a feed, a payload, and a secret beside it.
    fn fixture() -> (tempfile::TempDir, PathBuf, Vec<u8>) {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("pub");
        std::fs::create_dir_all(dir.join("payloads")).unwrap();
        std::fs::write(dir.join("feed.json"), b"{\"releases\":[]}").unwrap();
        let payload = data(200_000);
        std::fs::write(dir.join("payloads/a b.payload"), &payload).unwrap();
        std::fs::write(top.path().join("secret"), b"secret").unwrap();
        (top, dir, payload)
    }

    fn start(dir: &Path, cut_after: Option<u64>) -> Server {
        Server::start(ServeOptions {
            dir: dir.to_owned(),
            addr: "127.0.0.1:0".parse().unwrap(),
            log: false,
            cut_after,
        })
        .unwrap()
    }

    #[test]
    fn get_head_and_ranges() {
        let (_top, dir, payload) = fixture();
        let server = start(&dir, None);
        assert_ne!(server.addr.port(), 0);
        assert_eq!(
            server.url(),
            format!("http://127.0.0.1:{}", server.addr.port())
        );

        let r = get(&server, "/feed.json", "");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body, b"{\"releases\":[]}");

        let r = get(&server, "/payloads/a%20b.payload?x=1", "");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/octet-stream"));
        assert_eq!(r.header("content-length"), Some("200000"));
        assert_eq!(r.body, payload);

        let r = get(
            &server,
            "/payloads/a%20b.payload",
            "Range: bytes=100-199\r\n",
        );
        assert_eq!(r.status, 206);
        assert_eq!(r.header("content-range"), Some("bytes 100-199/200000"));
        assert_eq!(r.body, payload[100..200]);

        let r = get(
            &server,
            "/payloads/a%20b.payload",
            "range: bytes=150000-\r\n",
        );
        assert_eq!(r.status, 206);
        assert_eq!(
            r.header("content-range"),
            Some("bytes 150000-199999/200000")
        );
        assert_eq!(r.body, payload[150_000..]);

        let r = get(&server, "/payloads/a%20b.payload", "Range: bytes=-10\r\n");
        assert_eq!(r.status, 206);
        assert_eq!(r.body, payload[199_990..]);

        // A last byte past the end is clamped.
        let r = get(
            &server,
            "/payloads/a%20b.payload",
            "Range: bytes=199999-300000\r\n",
        );
        assert_eq!(r.status, 206);
        assert_eq!(r.body, payload[199_999..]);

        let r = ask(&server, "HEAD /payloads/a%20b.payload HTTP/1.1\r\n\r\n");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-length"), Some("200000"));
        assert!(r.body.is_empty());

        let before = 15 + 200_000 + 100 + 50_000 + 10 + 1;
        assert_eq!(server.bytes_served(), before);
        server.stop();
    }

    #[test]
    fn errors() {
        let (top, dir, _) = fixture();
        std::os::unix::fs::symlink(top.path().join("secret"), dir.join("link")).unwrap();
        let server = start(&dir, None);

        assert_eq!(get(&server, "/missing", "").status, 404);
        assert_eq!(get(&server, "/payloads", "").status, 404);
        assert_eq!(get(&server, "/../secret", "").status, 403);
        assert_eq!(
            get(&server, "/payloads/%2e%2e/%2E%2E/secret", "").status,
            403
        );
        // A symbolic link out of DIR is refused too.
        assert_eq!(get(&server, "/link", "").status, 403);
        assert_eq!(get(&server, "/bad%zz", "").status, 400);
        assert_eq!(get(&server, "/bad%+1", "").status, 400);
        assert_eq!(get(&server, "feed.json", "").status, 400);
        assert_eq!(ask(&server, "garbage\r\n\r\n").status, 400);

        let r = ask(
            &server,
            "POST /feed.json HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(r.status, 405);
        assert_eq!(r.header("allow"), Some("GET, HEAD"));

        let r = get(
            &server,
            "/payloads/a%20b.payload",
            "Range: bytes=200000-\r\n",
        );
        assert_eq!(r.status, 416);
        assert_eq!(r.header("content-range"), Some("bytes */200000"));
        assert!(r.body.is_empty());

        // Ranges this server does not do are answered with the whole file.
        let r = get(&server, "/feed.json", "Range: bytes=0-1,4-5\r\n");
        assert_eq!(r.status, 200);
    }

    #[test]
    fn cuts_only_the_first_payload_response() {
        let (_top, dir, payload) = fixture();
        let server = start(&dir, Some(1000));
        // The feed is never cut.
        assert_eq!(get(&server, "/feed.json", "").body.len(), 15);
        let r = get(&server, "/payloads/a%20b.payload", "");
        assert_eq!(r.header("content-length"), Some("200000"));
        assert_eq!(r.body, payload[..1000]);
        let r = get(&server, "/payloads/a%20b.payload", "Range: bytes=1000-\r\n");
        assert_eq!(r.status, 206);
        assert_eq!(r.body, payload[1000..]);
    }

    #[test]
    fn range_parsing() {
        use RangeSpec::*;
        assert_eq!(parse_range("bytes=0-0", 10), Bytes { first: 0, last: 0 });
        assert_eq!(parse_range("bytes=3-", 10), Bytes { first: 3, last: 9 });
        assert_eq!(parse_range("bytes=3-100", 10), Bytes { first: 3, last: 9 });
        assert_eq!(parse_range("bytes=-3", 10), Bytes { first: 7, last: 9 });
        assert_eq!(parse_range("bytes=-30", 10), Bytes { first: 0, last: 9 });
        assert_eq!(parse_range("bytes=10-", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=5-3", 10), Ignore);
        assert_eq!(parse_range("bytes=a-", 10), Ignore);
        assert_eq!(parse_range("bytes=+1-", 10), Ignore);
        assert_eq!(parse_range("items=1-2", 10), Ignore);
        assert_eq!(parse_range("bytes=-", 10), Ignore);
    }

    #[test]
    fn start_refuses_a_missing_directory() {
        let top = tempfile::tempdir().unwrap();
        let err = Server::start(ServeOptions {
            addr: "127.0.0.1:0".parse().unwrap(),
            ..ServeOptions::new(top.path().join("nope"))
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("nope"), "{err:#}");
    }
}
