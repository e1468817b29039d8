//! An EC2-style instance metadata service for VM tests, one connection at
//! a time: QEMU's user networking runs `slipway-test-imds` (this module's
//! binary) for every TCP connection the guest opens to 169.254.169.254:80
//! (`guestfwd=…-cmd:`), with the connection on its stdin and stdout.
//!
//! No real metadata service can run outside EC2, so this one plays it, in
//! the strict mode AWS calls `HttpTokens=required` (IMDSv2 only):
//! - `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds`
//!   returns the token;
//! - every `GET` must carry it in `X-aws-ec2-metadata-token`, else 401;
//! - `GET /latest/<path>` answers from [`ImdsData::paths`], 404 otherwise.
//!
//! Each request is appended to `requests.log` beside the data file (one
//! `METHOD PATH token=<ok|missing|wrong>` line), so a test can show the
//! token flow happened.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// What the service answers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImdsData {
    /// The IMDSv2 token handed out.
    pub token: String,
    /// `latest/…` path → body, e.g. `meta-data/instance-id`.
    pub paths: BTreeMap<String, String>,
}

impl ImdsData {
    /// A service for one instance: its ID, host name, one SSH key, and
    /// user-data if given.
    pub fn instance(id: &str, hostname: &str, ssh_key: &str, user_data: Option<&str>) -> Self {
        let mut paths = BTreeMap::new();
        for (path, body) in [
            ("meta-data/instance-id", id),
            ("meta-data/local-hostname", hostname),
            ("meta-data/public-keys/", "0=slipway-test"),
            ("meta-data/public-keys/0/openssh-key", ssh_key),
        ] {
            paths.insert(path.to_string(), body.to_string());
        }
        if let Some(u) = user_data {
            paths.insert("user-data".to_string(), u.to_string());
        }
        ImdsData {
            token: format!("slipway-test-token-{id}"),
            paths,
        }
    }

    /// Writes the data file the per-connection program reads.
    pub fn write(&self, file: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        std::fs::write(file, json).with_context(|| format!("writing {}", file.display()))
    }
}

/// The `requests.log` beside a data file.
pub fn request_log(data_file: &Path) -> PathBuf {
    data_file.with_file_name("requests.log")
}

/// The QEMU `-netdev user` options that put this service at
/// 169.254.169.254:80: a guest network of 169.254.0.0/16 (slirp forwards
/// only addresses inside its own network; the host is then 169.254.0.2)
/// and a `guestfwd` that runs `program DATA_FILE` per connection.
pub fn netdev_options(program: &Path, data_file: &Path) -> Result<String> {
    for p in [program, data_file] {
        let s = p.to_string_lossy();
        if s.contains([',', ' ']) {
            bail!("{s}: a path with a comma or space cannot go into -netdev");
        }
    }
    Ok(format!(
        "net=169.254.0.0/16,host=169.254.0.2,dhcpstart=169.254.0.15,\
         guestfwd=tcp:169.254.169.254:80-cmd:{} {}",
        program.display(),
        data_file.display()
    ))
}

/// Serves the requests of one connection (HTTP/1.1, answered with
/// `Connection: close`, so one request).
pub fn serve_connection(data_file: &Path, input: impl Read, mut output: impl Write) -> Result<()> {
    let data: ImdsData = serde_json::from_slice(
        &std::fs::read(data_file).with_context(|| format!("reading {}", data_file.display()))?,
    )
    .with_context(|| format!("parsing {}", data_file.display()))?;
    let mut reader = std::io::BufReader::new(input);
    let head = read_head(&mut reader)?;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    if req.parse(&head)?.is_partial() {
        bail!("incomplete request head");
    }
    let method = req.method.unwrap_or_default().to_string();
    let path = req.path.unwrap_or_default().to_string();
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    let token = match header("X-aws-ec2-metadata-token") {
        None => "missing",
        Some(t) if t == data.token => "ok",
        Some(_) => "wrong",
    };
    let (status, body) = match (method.as_str(), path.as_str()) {
        ("PUT", "/latest/api/token")
            if header("X-aws-ec2-metadata-token-ttl-seconds").is_some() =>
        {
            (200, data.token.clone())
        }
        ("PUT", "/latest/api/token") => (400, String::new()),
        ("GET", _) if token != "ok" => (401, String::new()),
        ("GET", p) => match p.strip_prefix("/latest/").and_then(|p| data.paths.get(p)) {
            Some(body) => (200, body.clone()),
            None => (404, String::new()),
        },
        _ => (405, String::new()),
    };
    let log_line = format!("{method} {path} token={token} -> {status}\n");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(request_log(data_file))?;
    log.write_all(log_line.as_bytes())?;
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    write!(
        output,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    output.flush()?;
    Ok(())
}

/// The request line and headers, up to the blank line (bodies are not
/// read: the token PUT has none).
fn read_head(reader: &mut impl BufRead) -> Result<Vec<u8>> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line)? == 0 {
            bail!("connection closed inside the request head");
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" || line == b"\n" {
            return Ok(head);
        }
        if head.len() > 16 * 1024 {
            bail!("request head over 16 KiB");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(data: &ImdsData, request: &str) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("imds.json");
        data.write(&file).unwrap();
        let mut out = Vec::new();
        serve_connection(&file, request.as_bytes(), &mut out).unwrap();
        let log = std::fs::read_to_string(request_log(&file)).unwrap();
        (String::from_utf8(out).unwrap(), log)
    }

    #[test]
    fn tokens_are_required_and_paths_answered() {
        let data = ImdsData::instance(
            "i-1",
            "host-1",
            "ssh-ed25519 AAAA k",
            Some("#cloud-config\n"),
        );
        let (out, log) = exchange(
            &data,
            "PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 300\r\n\r\n",
        );
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
        assert!(out.ends_with("slipway-test-token-i-1"), "{out}");
        assert_eq!(log, "PUT /latest/api/token token=missing -> 200\n");

        let get = |path: &str, token: Option<&str>| {
            let t = token.map_or(String::new(), |t| {
                format!("X-aws-ec2-metadata-token: {t}\r\n")
            });
            exchange(&data, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{t}\r\n")).0
        };
        assert!(get("/latest/meta-data/instance-id", None).starts_with("HTTP/1.1 401"));
        assert!(get("/latest/meta-data/instance-id", Some("nope")).starts_with("HTTP/1.1 401"));
        let ok = get(
            "/latest/meta-data/instance-id",
            Some("slipway-test-token-i-1"),
        );
        assert!(
            ok.starts_with("HTTP/1.1 200") && ok.ends_with("\r\n\r\ni-1"),
            "{ok}"
        );
        let missing = get("/latest/meta-data/nothing", Some("slipway-test-token-i-1"));
        assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    }

    #[test]
    fn netdev_options_put_the_service_inside_the_guest_network() {
        let o = netdev_options(Path::new("/bin/imds"), Path::new("/t/imds.json")).unwrap();
        assert!(o.starts_with("net=169.254.0.0/16,"), "{o}");
        assert!(o.ends_with("guestfwd=tcp:169.254.169.254:80-cmd:/bin/imds /t/imds.json"));
        assert!(netdev_options(Path::new("/b,in"), Path::new("/t")).is_err());
    }
}
