//! A real container registry for the tests and benchmarks: Debian's
//! `docker-registry` (distribution 2.8) on 127.0.0.1, with its own config
//! and storage in a temporary folder, no auth and no TLS. The guest
//! reaches it through QEMU's user network as `10.0.2.2:<port>`, so the
//! guest's `daemon.json` lists that address in `insecure-registries`.
//! Images go in with Debian's `skopeo`, a real client of the distribution
//! API. The registry is killed when the value is dropped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::oci::OciImage;
use crate::util::which;

pub use crate::host_setup::{REGISTRY_BIN, SKOPEO_BIN};

/// How the guest (QEMU user networking) reaches the host's loopback.
pub const GUEST_HOST_ADDR: &str = "10.0.2.2";

/// Why the registry tools cannot run here, if they cannot.
pub fn missing_tools() -> Option<String> {
    let missing: Vec<&str> = [REGISTRY_BIN, SKOPEO_BIN]
        .into_iter()
        .filter(|b| which(b).is_none())
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "{} not found: `apt-get install docker-registry skopeo` (ci/install-deps.sh)",
            missing.join(" and ")
        )
    })
}

pub struct Registry {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
    // Config and storage; removed with the registry.
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Registry {
    /// Starts a registry on a free loopback port and waits until
    /// `GET /v2/` answers 200.
    pub fn start() -> Result<Registry> {
        if let Some(why) = missing_tools() {
            bail!("{why}");
        }
        // The free port is found by binding port 0 and letting it go; a
        // port taken by someone else in between makes the registry exit,
        // and the next attempt picks another.
        let mut last = None;
        for _ in 0..3 {
            match Self::try_start() {
                Ok(r) => return Ok(r),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("registry did not start")))
    }

    fn try_start() -> Result<Registry> {
        let dir = tempfile::Builder::new()
            .prefix("slipway-registry-")
            .tempdir()
            .context("creating the registry's folder")?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage)?;
        // No `auth` section: anyone may push and pull. Debian's packaged
        // config (htpasswd auth on :5000) is not used.
        let config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  accesslog:\n    disabled: false\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n",
            storage.display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config)?;
        let log = dir.path().join("registry.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {REGISTRY_BIN}"))?;
        let mut registry = Registry {
            child,
            addr,
            log,
            _dir: dir,
        };
        registry.wait_ready(Duration::from_secs(30))?;
        Ok(registry)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{REGISTRY_BIN} exited ({status}) before answering on {}:\n{}",
                    self.addr,
                    self.log_tail(20)
                );
            }
            if let Ok(200) = http_status(self.addr, "/v2/") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{REGISTRY_BIN} did not answer GET /v2/ on {} within {} s:\n{}",
                    self.addr,
                    timeout.as_secs(),
                    self.log_tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The registry's host part as the guest writes it in image names and
    /// `insecure-registries`.
    pub fn guest_host(&self) -> String {
        format!("{GUEST_HOST_ADDR}:{}", self.port())
    }

    /// The last lines the registry logged.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Pushes an OCI layout image as `name` (`repo/path:tag`) with
    /// `skopeo copy`.
    pub fn push(&self, image: &OciImage, name: &str) -> Result<()> {
        let dest = format!("docker://{}/{name}", self.addr);
        let out = skopeo()
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(image.skopeo_source())
            .arg(&dest)
            .output()
            .context("running skopeo copy")?;
        if !out.status.success() {
            bail!(
                "skopeo copy {} {dest} failed ({}):\n{}\nregistry log:\n{}",
                image.skopeo_source(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                self.log_tail(10)
            );
        }
        Ok(())
    }

    /// `skopeo inspect` of `name` (`--config` for the image's config
    /// instead of the summary), parsed.
    pub fn inspect(&self, name: &str, config: bool) -> Result<serde_json::Value> {
        let mut cmd = skopeo();
        cmd.args(["inspect", "--tls-verify=false"]);
        if config {
            cmd.arg("--config");
        }
        let out = cmd
            .arg(format!("docker://{}/{name}", self.addr))
            .output()
            .context("running skopeo inspect")?;
        if !out.status.success() {
            bail!(
                "skopeo inspect {name} failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        serde_json::from_slice(&out.stdout).context("skopeo inspect printed no JSON")
    }
}

/// skopeo without the host's signature policy file: the images are the
/// test's own, and a minimal host has no `/etc/containers/policy.json`.
fn skopeo() -> Command {
    let mut cmd = Command::new(SKOPEO_BIN);
    cmd.arg("--insecure-policy").stdin(Stdio::null());
    cmd
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status code of a plain HTTP/1.0 GET.
pub fn http_status(addr: SocketAddr, path: &str) -> Result<u16> {
    Ok(http_get(addr, path, Duration::from_secs(5))?.0)
}

/// A plain HTTP/1.0 GET: status code and body. Written by hand over
/// `TcpStream`: the tests need only this, against servers they start.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no HTTP status from {addr}: {:?}", truncate(&text, 200)))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Where a test's OCI layouts go (kept for inspection after a failure).
pub fn layout_dir(name: &str) -> PathBuf {
    crate::paths::slipway_dir().join("oci").join(name)
}

/// Writes the busybox web image (with the busybox the image in
/// `image_dir` was built with) into [`layout_dir`] and pushes it to
/// `registry` as `name`; the page is `page`.
pub fn push_web_image(
    registry: &Registry,
    image_dir: &Path,
    page: &str,
    name: &str,
) -> Result<OciImage> {
    let busybox = crate::oci::image_busybox(image_dir)?;
    let epoch = crate::build::default_source_date_epoch()?;
    // One folder per registry: tests running at once do not share it.
    let dir = layout_dir(&format!("web-{}", registry.port()));
    let image = crate::oci::write_busybox_web(&busybox, page, epoch, &dir)?;
    registry.push(&image, name)?;
    Ok(image)
}

/// `Path` of a layout's blob for a digest.
pub fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}
