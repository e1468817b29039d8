//! `cargo xtask bench containers`: the Docker engine on the image, measured
//! next to references from the same run (printed, never asserted):
//! - power-on → the first container answering HTTP on a published port,
//!   next to power-on → the ready line (first boot, which pulls the image
//!   from a registry on the host, and a later power-on with it cached);
//! - `docker run --rm IMAGE true`, median of 10 on the booted guest, next
//!   to `runc run` of the same root filesystem as a bundle;
//! - disk.raw compressed with xz and zstd, next to Talos's 89 MB xz.

use std::io::{BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::build::{build_image, BuildOptions};
use crate::qemu::Machine;
use crate::registry::{self, Registry};
use crate::seed::SeedKind;
use crate::vm::Vm;

/// The page the test image serves.
pub const PAGE: &str = "hello from a slipway container";
/// Where the image goes in the registry.
pub const IMAGE_NAME: &str = "slipway/web:1";
/// The guest port `web.service` publishes the container's port 80 on.
pub const GUEST_WEB_PORT: u16 = 8080;
/// Talos's metal image (with containerd and kubelet), xz-compressed.
const TALOS_XZ_MB: f64 = 89.0;

const BOOT: Duration = Duration::from_secs(600);
const CMD: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct Options {
    pub board: String,
    /// A built image folder instead of building the board's.
    pub image: Option<PathBuf>,
    pub runs: usize,
}

/// `/etc/docker/daemon.json` letting dockerd pull over plain HTTP from the
/// host's registry.
pub fn daemon_json(registry_host: &str) -> String {
    format!("{{\"insecure-registries\": [\"{registry_host}\"]}}\n")
}

/// The web unit as a Container Linux user writes it: the engine's CLI in
/// `ExecStart=`, the container removed first, restarted by the manager.
pub fn web_unit(image: &str) -> String {
    format!(
        "[Unit]\n\
         Description=The test web container\n\
         After=docker.service\n\
         Requires=docker.service\n\
         [Service]\n\
         Restart=always\n\
         RestartSec=2s\n\
         ExecStartPre=-/usr/bin/docker rm -f web\n\
         ExecStart=/usr/bin/docker run --name web -p {GUEST_WEB_PORT}:80 -v webdata:/data {image}\n\
         ExecStop=/usr/bin/docker stop web\n\
         [Install]\n\
         WantedBy=multi-user.target\n"
    )
}

/// Indents `text` for a YAML block scalar.
pub fn indent(text: &str, spaces: usize) -> String {
    let pad = " ".repeat(spaces);
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// User-data with `daemon.json` and the web unit (enabled and started);
/// `extra_top` goes at the top level, `extra_units` into `coreos.units`.
pub fn web_user_data(registry_host: &str, extra_top: &str, extra_units: &str) -> String {
    let image = format!("{registry_host}/{IMAGE_NAME}");
    format!(
        "#cloud-config\n{extra_top}write_files:\n  - path: /etc/docker/daemon.json\n    content: |\n{}\
         coreos:\n  units:\n    - name: web.service\n      enable: true\n      command: start\n      content: |\n{}{extra_units}",
        indent(&daemon_json(registry_host), 6),
        indent(&web_unit(&image), 8),
    )
}

/// Polls the host side of the forwarded port until the page comes back;
/// the time it answered, or an error naming the last failure.
pub fn wait_page(addr: SocketAddr, timeout: Duration) -> Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        // QEMU accepts on the host port even while nothing listens in the
        // guest (and then closes): only the page counts.
        let last = match registry::http_get(addr, "/", Duration::from_secs(3)) {
            Ok((200, body)) if body.contains(PAGE) => return Ok(Instant::now()),
            Ok((code, body)) => format!("HTTP {code}: {body:.200}"),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            bail!(
                "no page from {addr} within {} s (last: {last})",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn run(opts: &Options) -> Result<()> {
    let image_dir = match &opts.image {
        Some(dir) => dir.clone(),
        None => build_image(&BuildOptions::new(&opts.board)?)?.out_dir,
    };
    let board = board_of(&image_dir).unwrap_or_else(|| opts.board.clone());

    let raw = image_dir.join("disk.raw");
    eprintln!("bench: compressing {} (xz -6, zstd -3)", raw.display());
    let t = Instant::now();
    let xz = xz_size(&raw)?;
    let xz_secs = t.elapsed().as_secs_f64();
    let zst = zstd_size(&raw)?;

    let registry = Registry::start()?;
    registry::push_web_image(&registry, &image_dir, PAGE, IMAGE_NAME)?;
    let tmp = tempfile::tempdir()?;
    let user_data = tmp.path().join("user-data.yaml");
    std::fs::write(&user_data, web_user_data(&registry.guest_host(), "", ""))?;
    let image_ref = format!("{}/{IMAGE_NAME}", registry.guest_host());

    let (mut ready1, mut http1, mut ready2, mut http2) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut docker_ms, mut runc_ms) = (Vec::new(), Vec::new());
    // web.service's failed starts before it answered (each one adds its
    // RestartSec=, doubled per failure in a row, to the figure).
    let (mut restarts1, mut restarts2) = (Vec::new(), Vec::new());
    for i in 0..opts.runs {
        eprintln!("bench: containers boot {}/{}", i + 1, opts.runs);
        let web_port = free_port()?;
        let web = SocketAddr::from(([127, 0, 0, 1], web_port));
        let mut machine = Machine::new(boot_disk(&image_dir));
        machine.memory_mib = 1536;
        machine.disk_size = Some(4 << 30);
        machine.user_data = Some((SeedKind::NoCloud, user_data.clone()));
        machine.host_forwards = vec![(web_port, GUEST_WEB_PORT)];
        machine.extra_args = vec!["-no-shutdown".into()];
        let mut vm = Vm::start(&format!("bench-containers-{i}"), &machine)?;
        let power_on = Instant::now();
        vm.wait_for("slipway: ready ", BOOT)?;
        ready1.push(power_on.elapsed().as_secs_f64());
        let answered = wait_page(web, BOOT).with_context(|| diagnose(&mut vm))?;
        http1.push((answered - power_on).as_secs_f64());
        restarts1.push(web_restarts(&mut vm));

        if i == 0 {
            docker_ms = time_loop(&mut vm, &format!("docker run --rm {image_ref} true"))?;
            let (rc, out) = vm.run(
                &format!(
                    "rm -rf /var/tmp/bundle && mkdir -p /var/tmp/bundle/rootfs && cd /var/tmp/bundle && \
                     c=$(docker create {image_ref} true) && docker export $c | tar -x -C rootfs && \
                     docker rm $c >/dev/null && runc spec && \
                     sed -i 's/\"terminal\": true/\"terminal\": false/; s/\"sh\"$/\"true\"/' config.json && \
                     runc run -b /var/tmp/bundle bench-probe </dev/null 2>&1; echo \"runc exit $?\"; cd /"
                ),
                CMD,
            )?;
            if rc != 0 || !out.contains("runc exit 0") {
                eprintln!("bench: runc reference unavailable:\n{out}");
            } else {
                runc_ms = time_loop(&mut vm, "runc run -b /var/tmp/bundle bench$i")?;
            }
        }

        // A clean poweroff, then power on the same disk again.
        vm.qmp()?.system_powerdown()?;
        vm.wait_for("slipway: powering off", CMD)?;
        std::thread::sleep(Duration::from_secs(1));
        let mut qmp = vm.qmp()?;
        qmp.system_reset()?;
        qmp.execute("cont", None)?;
        let power_on = Instant::now();
        vm.wait_for("slipway: ready ", BOOT)?;
        ready2.push(power_on.elapsed().as_secs_f64());
        let answered = wait_page(web, BOOT).with_context(|| diagnose(&mut vm))?;
        http2.push((answered - power_on).as_secs_f64());
        restarts2.push(web_restarts(&mut vm));
        let _ = qmp.quit();
    }

    let runs = opts.runs;
    println!("\n== containers: Docker engine on {board}, TCG, median of {runs} boots");
    println!(
        "  first boot: power-on → ready line           {:>7.1} s",
        median(ready1)
    );
    println!(
        "  first boot: power-on → container answers    {:>7.1} s   (pulls the image from the host's registry)",
        median(http1)
    );
    println!(
        "  power-on again: → ready line                 {:>7.1} s",
        median(ready2)
    );
    println!(
        "  power-on again: → container answers          {:>7.1} s   (image cached on /var)",
        median(http2)
    );
    println!(
        "  web.service restarts before it answered: first boot {restarts1:?}, power-on again {restarts2:?}"
    );
    println!("\n== container start latency on the booted guest, median of 10");
    let (d, r) = (median(docker_ms), median(runc_ms));
    println!("  docker run --rm IMAGE true   {d:>7.0} ms");
    if r.is_nan() {
        println!("  reference: runc run (bundle) unavailable (see above)");
    } else {
        println!(
            "  reference: runc run (bundle) {r:>7.0} ms   (engine overhead ×{:.1})",
            d / r
        );
    }
    let mb = |b: u64| b as f64 / 1e6;
    println!("\n== disk.raw compressed (the image with the engine)");
    println!(
        "  xz -6     {:>7.1} MB   ({xz_secs:.0} s)   target and reference: <= Talos metal image {TALOS_XZ_MB:.0} MB xz",
        mb(xz)
    );
    // The 60 MB zstd target predates Debian's engine and etcd (about
    // 290 MB installed); the target is Talos's xz size above.
    println!("  zstd -3   {:>7.1} MB", mb(zst));
    Ok(())
}

/// The disk to boot from an image folder: disk.qcow2, or disk.raw when
/// the image was built with `--no-qcow2`.
pub fn boot_disk(dir: &Path) -> PathBuf {
    Some(dir.join("disk.qcow2"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| dir.join("disk.raw"))
}

/// web.service's restart count (`slipctl status --json`), or -1 if the
/// guest did not say.
fn web_restarts(vm: &mut Vm) -> i64 {
    let Ok((_, json)) = vm.run("slipctl status --json", CMD) else {
        return -1;
    };
    serde_json::from_str::<serde_json::Value>(&json)
        .ok()
        .and_then(|v| {
            v["units"]
                .as_array()?
                .iter()
                .find(|u| u["name"] == "web.service")?["restarts"]
                .as_i64()
        })
        .unwrap_or(-1)
}

/// The board an image folder was built for (its manifest.json).
fn board_of(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("manifest.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["board"].as_str().map(str::to_string)
}

/// Runs `command` ten times in the guest, each timed with /proc/uptime
/// (10 ms steps; busybox `date` has no sub-second format); the times in ms.
fn time_loop(vm: &mut Vm, command: &str) -> Result<Vec<f64>> {
    let (_, out) = vm.run(
        &format!(
            "for i in $(seq 10); do a=$(cut -d' ' -f1 /proc/uptime); {command} </dev/null >/dev/null 2>&1 \
             || echo \"failed $?\"; b=$(cut -d' ' -f1 /proc/uptime); echo \"took $a $b\"; done"
        ),
        Duration::from_secs(900),
    )?;
    if out.contains("failed") {
        bail!("`{command}` failed in the guest:\n{out}");
    }
    let ms: Vec<f64> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("took "))
        .filter_map(|r| {
            let (a, b) = r.split_once(' ')?;
            Some((b.parse::<f64>().ok()? - a.parse::<f64>().ok()?) * 1000.0)
        })
        .collect();
    if ms.len() != 10 {
        bail!("expected 10 timings of `{command}`, got:\n{out}");
    }
    Ok(ms)
}

/// What the guest says about the web unit and the engine, for an error.
pub fn diagnose(vm: &mut Vm) -> String {
    let cmd = "slipctl status web.service; slipctl status docker.service; \
               tail -n 30 /var/log/services/web.service.log; \
               tail -n 30 /var/log/services/docker.service.log";
    match vm.run(cmd, CMD) {
        Ok((_, out)) => format!("guest state:\n{out}"),
        Err(e) => format!("guest state unavailable: {e:#}"),
    }
}

struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn copy_file(path: &Path, to: &mut impl Write) -> Result<()> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n])?;
    }
}

/// Size of `path` compressed by xz at its default preset (what a user
/// shipping the image with `xz -T0` gets), on both cores.
fn xz_size(path: &Path) -> Result<u64> {
    let stream = liblzma::stream::MtStreamBuilder::new()
        .preset(6)
        .threads(2)
        .check(liblzma::stream::Check::Crc64)
        .encoder()
        .context("setting up xz")?;
    let mut enc = liblzma::write::XzEncoder::new_stream(Counter(0), stream);
    copy_file(path, &mut enc)?;
    Ok(enc.finish()?.0)
}

fn zstd_size(path: &Path) -> Result<u64> {
    let mut enc = zstd::Encoder::new(Counter(0), 3)?;
    copy_file(path, &mut enc)?;
    Ok(enc.finish()?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_is_valid_cloud_config() {
        let text = web_user_data("10.0.2.2:5000", "", "");
        // The guest's own parser and validator.
        let report = cloud_config::validate(text.as_bytes());
        assert!(
            !report.has_errors() && !report.has_warnings(),
            "{text}\n{:?}",
            report.findings
        );
        assert!(report.config.is_some());
        assert!(
            text.contains(
                "ExecStart=/usr/bin/docker run --name web -p 8080:80 -v webdata:/data \
                 10.0.2.2:5000/slipway/web:1"
            ),
            "{text}"
        );
    }
}
