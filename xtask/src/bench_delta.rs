//! `cargo xtask bench delta`: how much of a release a machine downloads,
//! and how long its update takes, when it already runs the release before.
//!
//! Release N is the board's image with two bench files on its root (a
//! config file and a 5 MiB program). Each N+1 differs from it by one
//! small change:
//!
//! - `config`: the config file's one line changed;
//! - `program`: the program rebuilt (every byte after its first 4 KiB moved
//!   by one, as a recompile moves code);
//! - `kernel`: another kernel package of the board's series (vmlinuz, the
//!   modules in the initramfs and on the root);
//!
//! each also with its own version (os-release, boot entry). For each, N+1
//! is published (payload and delta index) and served on loopback by
//! `cargo xtask serve-updates`'s server; the static guest `update-engine` installs
//! it from the URL into slot files, once reusing N's parts (`--delta-from`)
//! and once downloading the whole payload, and the bench prints bytes over
//! the network (the engine's count and the server's), wall times, and what
//! other ways of cutting the data would have downloaded: fixed 1 MiB chunks
//! (the manifest's, found at any offset) and content-defined pieces of
//! other sizes. Figures only, never assertions.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use slipway_update::delta::index::{Chunking, DEFAULT_CHUNKING};
use slipway_update::manifest::Manifest;
use slipway_update::payload;

use crate::build::{build_image, BuildOptions};
use crate::serve::{ServeOptions, Server};
use crate::{paths, release, testing};

#[derive(Debug, Clone)]
pub struct Options {
    pub board: String,
    pub runs: usize,
    /// The kernel bump's package; default: the newest other of the series.
    pub kernel_package: Option<String>,
}

/// The targets of the issue: a one-package change, a kernel bump.
const SMALL_TARGET: f64 = 10.0;
const KERNEL_TARGET: f64 = 25.0;

const CONF_PATH: &str = "usr/lib/slipway/bench/bench.conf";
const PROGRAM_PATH: &str = "usr/lib/slipway/bench/program";

/// Other ways to cut the data, estimated offline for comparison.
const OTHER_CHUNKINGS: [Chunking; 2] = [
    Chunking {
        min: 4 << 10,
        avg: 16 << 10,
        max: 64 << 10,
    },
    Chunking {
        min: 64 << 10,
        avg: 256 << 10,
        max: 1 << 20,
    },
];

struct Variant {
    name: &'static str,
    dir: PathBuf,
    target: f64,
}

pub fn run(opts: &Options) -> Result<()> {
    let runs = opts.runs.max(1);
    eprintln!("bench: building the guest programs (update-engine, static musl)");
    let engine_bytes = crate::bench_update::guest_engine()?;
    let engine_bytes = std::fs::read(&engine_bytes)
        .with_context(|| format!("reading {}", engine_bytes.display()))?;
    eprintln!("bench: the board's image");
    let base_opts = BuildOptions::new(&opts.board)?;
    build_image(&base_opts)?;
    let base = paths::image_dir(&opts.board);
    let v = read_manifest_json(&base)?["version"]
        .as_str()
        .context("manifest.json has no version")?
        .to_string();

    let conf = |n: u32| format!("# bench config\nsetting = {n}\n").into_bytes();
    let program_v1 = engine_bytes.clone();
    let mut program_v2 = engine_bytes[..4096].to_vec();
    program_v2.push(0x90);
    program_v2.extend_from_slice(&engine_bytes[4096..engine_bytes.len() - 1]);
    let files = |c: Vec<u8>, p: &[u8]| {
        vec![
            (CONF_PATH.to_string(), 0o644, c),
            (PROGRAM_PATH.to_string(), 0o755, p.to_vec()),
        ]
    };
    eprintln!("bench: building release N and three N+1");
    let n = testing::test_release(&base, &format!("{v}.80"), files(conf(1), &program_v1))?;
    let variants = vec![
        Variant {
            name: "config",
            dir: testing::test_release(&base, &format!("{v}.81"), files(conf(2), &program_v1))?,
            target: SMALL_TARGET,
        },
        Variant {
            name: "program",
            dir: testing::test_release(&base, &format!("{v}.82"), files(conf(1), &program_v2))?,
            target: SMALL_TARGET,
        },
        Variant {
            name: "kernel",
            dir: kernel_release(
                &opts.board,
                &base,
                &format!("{v}.83"),
                opts.kernel_package.as_deref(),
                files(conf(1), &program_v1),
            )?,
            target: KERNEL_TARGET,
        },
    ];

    let work = paths::slipway_dir().join("bench").join("delta");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let _cleanup = Cleanup(&work);
    let engine = work.join("update-engine");
    std::fs::write(&engine, &engine_bytes)?;
    set_executable(&engine)?;
    let keys = work.join("keys");
    std::fs::create_dir_all(&keys)?;
    let (key, _) = release::signing_key(None)?;
    std::fs::write(
        keys.join(format!("{}.pub", key.public().id())),
        key.public().to_line("bench"),
    )?;
    let active = work.join("active");
    let old = extract_parts(&n.join(release::PAYLOAD_FILE), &active)?;

    let mut rows = Vec::new();
    for variant in &variants {
        rows.push(measure_variant(variant, &old, &work, &engine, &keys, runs)?);
    }
    print_rows(&rows);
    Ok(())
}

struct Row {
    name: &'static str,
    target: f64,
    payload: u64,
    /// The engine's count of bytes over the network, and the server's.
    downloaded: u64,
    served: u64,
    reused_pieces: u64,
    fetched_pieces: u64,
    delta_secs: f64,
    full_secs: f64,
    /// The delta apply's peak resident memory (VmHWM), highest of the runs.
    peak_kib: u64,
    /// Bytes a cut would download: fixed 1 MiB, then OTHER_CHUNKINGS.
    fixed: u64,
    others: Vec<u64>,
}

#[allow(clippy::too_many_arguments)]
fn measure_variant(
    variant: &Variant,
    old: &Parts,
    work: &Path,
    engine: &Path,
    keys: &Path,
    runs: usize,
) -> Result<Row> {
    eprintln!(
        "bench: {}: publishing {}",
        variant.name,
        variant.dir.display()
    );
    let feed = work.join(format!("feed-{}", variant.name));
    let published = release::publish(&release::PublishOptions {
        image_dir: variant.dir.clone(),
        dir: feed.clone(),
        channel: "bench".into(),
        valid_for: 86_400,
        key: None,
    })?;
    let server = Server::start(ServeOptions {
        addr: "127.0.0.1:0".parse()?,
        log: false,
        ..ServeOptions::new(&feed)
    })?;
    let rel = published
        .payload
        .strip_prefix(&feed)
        .context("payload outside the feed folder")?;
    let url = format!("{}/{}", server.url(), rel.display());
    let size = published.release.payload.size;
    let sha256 = published.release.payload.sha256.clone();

    let (mut delta, mut full) = (Vec::new(), Vec::new());
    let mut last = None;
    let mut peak_kib = 0;
    for i in 0..runs {
        eprintln!("bench: {}: run {}/{runs}", variant.name, i + 1);
        let before = server.bytes_served();
        let d = apply(engine, work, keys, &url, size, &sha256, Some(&old.dir))?;
        let served = server.bytes_served() - before;
        delta.push(d.secs);
        peak_kib = peak_kib.max(d.peak_kib.unwrap_or(0));
        last = Some((d.stdout, served));
        full.push(apply(engine, work, keys, &url, size, &sha256, None)?.secs);
    }
    let (out, served) = last.context("no run")?;
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("download: "))
        .with_context(|| format!("no download line in:\n{out}"))?
        .to_string();
    eprintln!("bench: {}: {line}", variant.name);
    let field = |key: &str| number_after(&line, key);

    // What other cuts would have downloaded (data bytes only).
    let new_manifest = read_header(&published.payload)?.manifest;
    let fixed = fixed_chunk_bytes(&old.manifest, &new_manifest);
    let mut others = Vec::new();
    for c in OTHER_CHUNKINGS {
        others.push(cdc_missing_bytes(old, &published.payload, &c)?);
    }
    Ok(Row {
        name: variant.name,
        target: variant.target,
        payload: size,
        downloaded: parse_mib(&line, "downloaded ").unwrap_or(0),
        served,
        reused_pieces: field(" pieces (").unwrap_or(0),
        fetched_pieces: field(" fetched").unwrap_or(0),
        delta_secs: median(delta),
        full_secs: median(full),
        peak_kib,
        fixed,
        others,
    })
}

/// Runs the engine's `apply-files` from `url` into fresh slot files.
fn apply(
    engine: &Path,
    work: &Path,
    keys: &Path,
    url: &str,
    size: u64,
    sha256: &str,
    delta_from: Option<&Path>,
) -> Result<crate::bench_update::Measured> {
    let (root, verity, esp) = (work.join("root-b"), work.join("verity-b"), work.join("esp"));
    for (path, len) in [(&root, 1u64 << 30), (&verity, 64 << 20)] {
        let _ = std::fs::remove_file(path);
        File::create(path)
            .and_then(|f| f.set_len(len))
            .with_context(|| format!("making {}", path.display()))?;
    }
    let _ = std::fs::remove_dir_all(&esp);
    let _ = std::fs::remove_dir_all(esp.with_extension("staging"));
    std::fs::create_dir_all(esp.join("loader/entries"))?;
    std::fs::write(
        esp.join("loader/entries/slipway-a.conf"),
        "title Slipway\nversion 0\n",
    )?;
    let mut cmd = Command::new(engine);
    cmd.arg("apply-files")
        .args(["--payload", url, "--payload-size", &size.to_string()])
        .args(["--payload-sha256", sha256])
        .arg("--root")
        .arg(&root)
        .arg("--verity")
        .arg(&verity)
        .arg("--esp")
        .arg(&esp)
        .arg("--keys")
        .arg(keys)
        .args(["--board", &board_of_payload(url), "--running-version", "0"])
        .current_dir(work);
    if let Some(d) = delta_from {
        cmd.arg("--delta-from").arg(d);
    }
    crate::bench_update::measure(&mut cmd)
        .with_context(|| format!("running {} apply-files", engine.display()))
}

/// `.../payloads/<board>/<version>.payload` → board.
fn board_of_payload(url: &str) -> String {
    url.rsplit('/').nth(1).unwrap_or("").to_string()
}

/// Release N's parts as a machine running it has them.
struct Parts {
    dir: PathBuf,
    manifest: Manifest,
    files: [PathBuf; 4],
}

fn read_header(path: &Path) -> Result<payload::Header> {
    let mut f = std::io::BufReader::new(
        File::open(path).with_context(|| format!("opening {}", path.display()))?,
    );
    payload::read_header(&mut f).with_context(|| format!("reading {}", path.display()))
}

fn extract_parts(payload_path: &Path, dir: &Path) -> Result<Parts> {
    std::fs::create_dir_all(dir)?;
    let header = read_header(payload_path)?;
    let mut f = File::open(payload_path)?;
    let names = ["root", "verity", "vmlinuz", "initrd"];
    let mut files: [PathBuf; 4] = Default::default();
    for (i, (_, start, size)) in header.manifest.offsets().into_iter().enumerate() {
        f.seek(SeekFrom::Start(header.data_offset + start))?;
        let path = dir.join(names[i]);
        let mut out = File::create(&path)?;
        std::io::copy(&mut (&mut f).take(size), &mut out)?;
        files[i] = path;
    }
    Ok(Parts {
        dir: dir.to_path_buf(),
        manifest: header.manifest,
        files,
    })
}

/// Data bytes of `new` in fixed chunks whose hash is nowhere in `old`.
fn fixed_chunk_bytes(old: &Manifest, new: &Manifest) -> u64 {
    let have: HashSet<&String> = old.chunks.iter().collect();
    (0..new.chunks.len())
        .filter(|&i| !have.contains(&new.chunks[i]))
        .map(|i| {
            let (s, e) = new.chunk_range(i);
            e - s
        })
        .sum()
}

/// Data bytes of the payload at `new` in pieces of `c` not among `old`'s.
fn cdc_missing_bytes(old: &Parts, new: &Path, c: &Chunking) -> Result<u64> {
    let mut have = HashSet::new();
    for path in &old.files {
        for (_, h) in c.cut(std::io::BufReader::new(File::open(path)?))? {
            have.insert(h);
        }
    }
    let header = read_header(new)?;
    let mut f = File::open(new)?;
    let mut missing = 0;
    for (_, start, size) in header.manifest.offsets() {
        f.seek(SeekFrom::Start(header.data_offset + start))?;
        for (len, h) in c.cut(std::io::BufReader::new((&f).take(size)))? {
            if !have.contains(&h) {
                missing += u64::from(len);
            }
        }
    }
    Ok(missing)
}

/// Release N with another kernel: `package`, or the newest
/// `linux-image-<abi>-<flavour>` package of the board's series apt knows
/// that is not N's kernel.
fn kernel_release(
    board: &str,
    base: &Path,
    version: &str,
    package: Option<&str>,
    extra: Vec<(String, u32, Vec<u8>)>,
) -> Result<PathBuf> {
    let running = read_manifest_json(base)?["kernel_release"]
        .as_str()
        .context("manifest.json has no kernel_release")?
        .to_string();
    // "6.1.0-57-cloud-amd64" → series "6.1.0-", flavour "-cloud-amd64".
    let (series, rest) = running
        .split_once('-')
        .with_context(|| format!("kernel release {running}: no '-'"))?;
    let flavour = rest.split_once('-').map(|(_, f)| f).unwrap_or(rest);
    let out = Command::new("apt-cache")
        .args(["search", "--names-only"])
        .arg(format!("^linux-image-{series}-[0-9]+-{flavour}$"))
        .output()
        .context("running apt-cache search")?;
    let mut candidates: Vec<(u32, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|p| !p.ends_with(&running))
        .filter_map(|p| {
            let abi = p
                .strip_prefix(&format!("linux-image-{series}-"))?
                .split('-')
                .next()?
                .parse()
                .ok()?;
            Some((abi, p.to_string()))
        })
        .collect();
    candidates.sort();
    let newest = candidates.pop().map(|(_, p)| p);
    let Some(package) = package.map(str::to_string).or(newest) else {
        bail!(
            "apt knows no other linux-image-{series}-N-{flavour} than {running} \
             (run apt-get update)"
        );
    };
    let dir = paths::slipway_dir()
        .join("bench")
        .join("kernel")
        .join(&package);
    let unpacked = dir.join("root");
    if !unpacked.join("boot").is_dir() {
        eprintln!("bench: downloading {package} for the kernel bump");
        std::fs::create_dir_all(&dir)?;
        let status = Command::new("apt-get")
            .args(["download", "-q", &package])
            .current_dir(&dir)
            .status()
            .context("running apt-get download")?;
        if !status.success() {
            bail!("apt-get download {package} failed: {status}");
        }
        let deb = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .context("apt-get download left no .deb")?;
        let status = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(&unpacked)
            .status()
            .context("running dpkg-deb")?;
        if !status.success() {
            bail!("dpkg-deb -x {} failed: {status}", deb.display());
        }
    }
    let release = package.trim_start_matches("linux-image-").to_string();
    let vmlinuz = unpacked.join(format!("boot/vmlinuz-{release}"));
    let modules = unpacked.join(format!("lib/modules/{release}"));
    let out_dir = paths::slipway_dir()
        .join("test-images")
        .join(format!("bench-kernel-{version}-{release}"));
    let mut opts = BuildOptions::new(board)?;
    opts.version = version.to_string();
    opts.out_dir = Some(out_dir.clone());
    opts.qcow2 = false;
    opts.extra_root_files = extra;
    opts.inputs.kernel_override = Some((vmlinuz, modules));
    eprintln!("bench: building release {version} with {package}");
    build_image(&opts)?;
    Ok(out_dir)
}

fn read_manifest_json(dir: &Path) -> Result<serde_json::Value> {
    let path = dir.join("manifest.json");
    serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))
}

fn print_rows(rows: &[Row]) {
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let pct = |b: u64, of: u64| b as f64 * 100.0 / of.max(1) as f64;
    println!(
        "\nbench delta: a machine on release N installs N+1 from a server on loopback \
         (median of the runs; full = whole payload, same run)"
    );
    println!(
        "{:<8} {:>9} {:>18} {:>7} {:>10} {:>10} {:>9} {:>9} {:>12} {:>12} {:>12} {:>9}",
        "change",
        "payload",
        "delta download",
        "target",
        "server",
        "pieces",
        "delta s",
        "full s",
        "fixed 1 MiB",
        "cdc 16 KiB",
        "cdc 256 KiB",
        "delta RSS"
    );
    for r in rows {
        let data = r.payload;
        println!(
            "{:<8} {:>7.1} M {:>8.2} M {:>6.1} % {:>5.0} % {:>8.2} M {:>4}/{:<5} {:>9.2} {:>9.2} {:>10.1} % {:>10.1} % {:>10.1} % {:>6.1} M",
            r.name,
            mib(r.payload),
            mib(r.downloaded),
            pct(r.downloaded, data),
            r.target,
            mib(r.served),
            r.reused_pieces,
            r.fetched_pieces,
            r.delta_secs,
            r.full_secs,
            pct(r.fixed, data),
            pct(r.others.first().copied().unwrap_or(0), data),
            pct(r.others.get(1).copied().unwrap_or(0), data),
            r.peak_kib as f64 / 1024.0,
        );
    }
    println!(
        "pieces: reused from N / fetched; default cut: FastCDC {}/{}/{} KiB (min/avg/max); \
         the other columns estimate data bytes only (no index, no header)",
        DEFAULT_CHUNKING.min >> 10,
        DEFAULT_CHUNKING.avg >> 10,
        DEFAULT_CHUNKING.max >> 10
    );
}

/// "downloaded 3.1 MiB of …" → bytes.
fn parse_mib(line: &str, after: &str) -> Option<u64> {
    let rest = line.split_once(after)?.1;
    let n: f64 = rest.split_whitespace().next()?.parse().ok()?;
    Some((n * (1u64 << 20) as f64) as u64)
}

/// The number just before `key` in `line` ("41 requests" → 41).
fn number_after(line: &str, key: &str) -> Option<u64> {
    let before = line.split_once(key)?.0;
    before.split_whitespace().last()?.parse().ok()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn set_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Removes the bench's scratch folder however the bench ends.
struct Cleanup<'a>(&'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engines_download_line_parses() {
        let line = "downloaded 3.1 MiB of the 85.8 MiB payload (3.6 %) in 41 requests: delta, \
                    1200 pieces (80.2 MiB) reused from /x/active, 60 fetched";
        assert_eq!(
            parse_mib(line, "downloaded "),
            Some((3.1 * 1048576.0) as u64)
        );
        assert_eq!(number_after(line, " requests"), Some(41));
        assert_eq!(number_after(line, " pieces ("), Some(1200));
        assert_eq!(number_after(line, " fetched"), Some(60));
        assert_eq!(
            board_of_payload("http://h:1/payloads/qemu-x86_64/1.2.payload"),
            "qemu-x86_64"
        );
    }
}
