//! `cargo xtask bench build`: figures printed next to a reference measured
//! in the same run. Never assertions: machines here are noisy, so medians
//! and ratios are what count.

use std::io::{BufReader, Read};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::build::{build_image, BuildOptions, InitKind, REFERENCE_MARKER};
use crate::qemu::Machine;
use crate::vm::Vm;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Per-phase and total medians of `runs` builds, then the reference's
/// median, measured in the same run, and the ratio.
fn print_phases(
    title: &str,
    phase_runs: &[Vec<(&'static str, Duration)>],
    (reference, reference_secs): (&str, Vec<f64>),
) {
    println!("\n== {title}, median of {}", phase_runs.len());
    let mut names: Vec<&str> = Vec::new();
    for (n, _) in phase_runs.iter().flatten() {
        if !names.contains(n) {
            names.push(n);
        }
    }
    for name in &names {
        let secs = phase_runs
            .iter()
            .filter_map(|r| {
                r.iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, d)| d.as_secs_f64())
            })
            .collect();
        println!("  {name:<12} {:>7.2} s", median(secs));
    }
    let total = median(
        phase_runs
            .iter()
            .map(|r| r.iter().map(|(_, d)| d.as_secs_f64()).sum())
            .collect(),
    );
    println!("  {:<12} {:>7.2} s", "total", total);
    let r = median(reference_secs);
    println!(
        "  reference: {reference} {r:>7.2} s (ratio {:.2})",
        total / r
    );
}

/// Seconds a command takes, which must succeed.
fn time_command(cmd: &mut std::process::Command) -> Result<f64> {
    let t = Instant::now();
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    anyhow::ensure!(status.success(), "{cmd:?} failed ({status})");
    Ok(t.elapsed().as_secs_f64())
}

pub fn build(board: &str, runs: usize) -> Result<()> {
    // 1. Warm builds. A first run warms the caches (packages, guest
    // programs, squashfs blocks) and is not counted.
    let opts = BuildOptions::new(board)?;
    eprintln!("bench: first build (warms the caches, not counted)");
    let first = build_image(&opts)?;
    let raw = first.out_dir.join("disk.raw");

    // Nothing changed: the up-to-date check. The reference, in the same
    // run: copying disk.raw once (`cp --reflink=never`, which skips the
    // holes as any sparse-aware copy does), the cheapest way to get a
    // folder with the same disk.
    let copy = crate::paths::slipway_dir().join("bench/disk-copy.raw");
    std::fs::create_dir_all(copy.parent().unwrap_or(std::path::Path::new(".")))?;
    let (mut unchanged, mut copies) = (Vec::new(), Vec::new());
    for i in 0..runs {
        eprintln!("bench: warm build, nothing changed {}/{runs}", i + 1);
        unchanged.push(build_image(&opts)?.phases);
        let _ = std::fs::remove_file(&copy);
        copies.push(time_command(
            std::process::Command::new("cp")
                .arg("--reflink=never")
                .arg(&raw)
                .arg(&copy),
        )?);
    }
    let _ = std::fs::remove_file(&copy);
    print_phases(
        "warm build-image, nothing changed (target: total <= 1.5 s)",
        &unchanged,
        ("cp --reflink=never disk.raw", copies),
    );

    // One input changed: SOURCE_DATE_EPOCH, one second later each run, so
    // every phase runs (every timestamp of the ESP, root, initramfs and
    // var changes) while the squashfs data blocks stay the cache's; into
    // a folder of its own, so the board's image stays as it was. The
    // reference, in the same run: the sha256 of the new disk.raw, which
    // the manifest must carry and nothing can start before the disk is
    // written (one core's SHA-NI over 2.6 GB).
    let mut changed_opts = BuildOptions::new(board)?;
    let bench_dir = crate::paths::image_dir(&format!("{board}-bench"));
    changed_opts.out_dir = Some(bench_dir.clone());
    // A stamp left by an interrupted bench could match a run's epoch.
    let _ = std::fs::remove_dir_all(&bench_dir);
    let (mut changed, mut hashes) = (Vec::new(), Vec::new());
    for i in 0..runs {
        eprintln!(
            "bench: warm build, SOURCE_DATE_EPOCH changed {}/{runs}",
            i + 1
        );
        changed_opts.source_date_epoch = opts.source_date_epoch + 1 + i as u64;
        changed.push(build_image(&changed_opts)?.phases);
        let t = Instant::now();
        crate::util::sha256_file(&bench_dir.join("disk.raw"))?;
        hashes.push(t.elapsed().as_secs_f64());
    }
    let _ = std::fs::remove_dir_all(&bench_dir);
    print_phases(
        "warm build-image, SOURCE_DATE_EPOCH changed (every phase runs)",
        &changed,
        ("sha256 of disk.raw", hashes),
    );

    // 2. The image compressed as a user would ship it.
    let t = Instant::now();
    let size = zstd_size(&raw)?;
    println!(
        "\n== disk.raw compressed with zstd -3: {:.1} MB ({:.1} s to compress; the size target, xz <= Talos's 89 MB, is in `bench containers`)",
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    // 3. Boot to the ready line against the reference: the same firmware,
    // boot loader, kernel and command line with a trivial busybox init.
    let mut ref_opts = BuildOptions::new(board)?;
    ref_opts.init = InitKind::Reference;
    ref_opts.out_dir = Some(crate::paths::image_dir(&format!("{board}-reference")));
    let reference = build_image(&ref_opts)?;
    let mut ours = Vec::new();
    let mut refs = Vec::new();
    for i in 0..runs {
        // Alternate, so drift in machine load hits both alike.
        let r = boot_time(
            &reference.out_dir.join("disk.qcow2"),
            REFERENCE_MARKER,
            &format!("bench-ref-{i}"),
        )?;
        let o = boot_time(
            &first.out_dir.join("disk.qcow2"),
            "slipway: ready ",
            &format!("bench-ours-{i}"),
        )?;
        eprintln!(
            "bench: boot {}/{runs}: reference {r:.2} s, slipway {o:.2} s",
            i + 1
        );
        refs.push(r);
        ours.push(o);
    }
    let (o, r) = (median(ours), median(refs));
    println!("\n== boot under TCG, QEMU start to line, median of {runs} (target: ratio <= 1.3)");
    println!("  reference (trivial init)  {r:>6.2} s");
    println!("  slipway ready line        {o:>6.2} s");
    println!("  ratio                     {:>6.2}", o / r);
    Ok(())
}

fn boot_time(image: &std::path::Path, line: &str, name: &str) -> Result<f64> {
    let mut machine = Machine::new(image.to_path_buf());
    machine.no_reboot = true;
    let mut vm = Vm::start(name, &machine)?;
    vm.wait_for(line, Duration::from_secs(300))?;
    Ok(vm.elapsed().as_secs_f64())
}

/// Size of the file compressed with zstd level 3, streamed.
fn zstd_size(path: &std::path::Path) -> Result<u64> {
    struct Counter(u64);
    impl std::io::Write for Counter {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut enc = zstd::Encoder::new(Counter(0), 3)?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        std::io::Write::write_all(&mut enc, &buf[..n])?;
    }
    Ok(enc.finish()?.0)
}

/// `cargo xtask bench verity`.
pub fn verity(board: &str, runs: usize) -> Result<()> {
    use slipway_image::verity as v;
    let dir = crate::paths::slipway_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    let data_path = dir.join("verity-data.img");
    let hash_path = dir.join("verity-hash.img");
    const SIZE: usize = 1 << 30;
    if std::fs::metadata(&data_path).map(|m| m.len() as usize).ok() != Some(SIZE) {
        eprintln!(
            "bench: writing 1 GiB of pseudo-random data to {}",
            data_path.display()
        );
        // xorshift: incompressible enough, and the same bytes every run.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut data = vec![0u8; SIZE];
        for chunk in data.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        std::fs::write(&data_path, &data)?;
    }
    let veritysetup = ["/usr/sbin/veritysetup", "/sbin/veritysetup"]
        .iter()
        .map(std::path::Path::new)
        .find(|p| p.is_file())
        .context("veritysetup not found: apt-get install cryptsetup-bin")?;
    let params = v::params_from_identity("bench", "verity");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for i in 0..runs {
        // Ours reads the file as veritysetup does, in pieces, on all cores.
        let t = Instant::now();
        let tree = v::build_from_file(&data_path, 0, SIZE as u64, &params)?;
        ours.push(t.elapsed().as_secs_f64());
        let _ = std::fs::remove_file(&hash_path);
        let t = Instant::now();
        let out = std::process::Command::new(veritysetup)
            .arg("format")
            .arg(format!("--salt={}", tree.salt_hex()))
            .arg(&data_path)
            .arg(&hash_path)
            .output()?;
        theirs.push(t.elapsed().as_secs_f64());
        let text = String::from_utf8_lossy(&out.stdout);
        anyhow::ensure!(
            out.status.success() && text.contains(&tree.root_hash_hex()),
            "veritysetup format disagrees with our root hash {}: {text}",
            tree.root_hash_hex()
        );
        eprintln!(
            "bench: run {}/{runs}: ours {:.2} s, veritysetup {:.2} s",
            i + 1,
            ours[i],
            theirs[i]
        );
    }
    let (o, t) = (median(ours), median(theirs));
    println!("\n== dm-verity hash tree of 1 GiB, median of {runs} (target: ratio <= 1.0)");
    println!("  veritysetup format   {t:>6.2} s");
    println!("  slipway verity        {o:>6.2} s  (same root hash)");
    println!("  ratio                {:>6.2}", o / t);

    // Boot cost: the same image with and without verity.
    let with = build_image(&BuildOptions::new(board)?)?;
    let mut off = BuildOptions::new(board)?;
    off.verity = false;
    off.out_dir = Some(crate::paths::image_dir(&format!("{board}-noverity")));
    let without = build_image(&off)?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let x = boot_time(
            &without.out_dir.join("disk.qcow2"),
            "slipway: ready ",
            &format!("bench-noverity-{i}"),
        )?;
        let y = boot_time(
            &with.out_dir.join("disk.qcow2"),
            "slipway: ready ",
            &format!("bench-verity-{i}"),
        )?;
        eprintln!(
            "bench: boot {}/{runs}: without {x:.2} s, with verity {y:.2} s",
            i + 1
        );
        a.push(x);
        b.push(y);
    }
    let (x, y) = (median(a), median(b));
    println!(
        "\n== boot to the ready line under TCG, median of {runs} (target: verity adds <= 5 %)"
    );
    println!("  without verity   {x:>6.2} s");
    println!("  with verity      {y:>6.2} s");
    println!("  verity adds      {:>+6.1} %", (y / x - 1.0) * 100.0);
    Ok(())
}

/// `cargo xtask bench services`: boots the image with user-data enabling
/// 20 trivial services and reports PID 1's resident memory and the time
/// from stage 2's start to all services started (the init's summary
/// line), next to references measured in the same VM: busybox `sh`
/// forking 20 `sleep`s, and the resident memory of that shell.
pub fn services(board: &str, runs: usize) -> Result<()> {
    let opts = BuildOptions::new(board)?;
    let image = build_image(&opts)?;
    let dir = tempfile::tempdir()?;
    let mut yaml = String::from("#cloud-config\ncoreos:\n  units:\n");
    for i in 1..=20 {
        yaml.push_str(&format!(
            "    - name: trivial{i:02}.service\n      enable: true\n      content: |\n        [Service]\n        ExecStart=/bin/sleep 100000\n        [Install]\n        WantedBy=multi-user.target\n"
        ));
    }
    let user_data = dir.path().join("user-data.yaml");
    std::fs::write(&user_data, yaml)?;

    let (mut started_ms, mut since_stage2, mut rss, mut ref_ms, mut ref_rss) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut first_boot = Vec::new();
    for i in 0..runs {
        eprintln!("bench: services boot {}/{runs}", i + 1);
        let mut machine = Machine::new(image.out_dir.join("disk.qcow2"));
        machine.user_data = Some((crate::seed::SeedKind::NoCloud, user_data.clone()));
        let mut vm = Vm::start(&format!("bench-services-{i}"), &machine)?;
        // The first boot also applies the user-data and makes the SSH
        // host key; the figure is the second boot's, as on every later
        // boot of a machine.
        let first = vm.wait_for("slipway: services started: ", Duration::from_secs(300))?;
        first_boot.push(parse_services_line(&first).map_or(0.0, |(_, _, s2)| s2));
        vm.reboot()?;
        let line = vm.wait_for("slipway: services started: ", Duration::from_secs(300))?;
        let (count, ms, s2) = parse_services_line(&line)
            .with_context(|| format!("unexpected summary line: {line}"))?;
        anyhow::ensure!(count >= 20, "only {count} services started: {line}");
        started_ms.push(ms);
        since_stage2.push(s2);
        let (_, out) = vm.run("grep VmRSS /proc/1/status", Duration::from_secs(60))?;
        rss.push(kib(&out)? / 1024.0);
        let (_, out) = vm.run(
            // /proc/uptime has 10 ms steps; busybox date has no %N.
            "a=$(cut -d' ' -f1 /proc/uptime); for i in $(seq 20); do sleep 100000 & done; \
             b=$(cut -d' ' -f1 /proc/uptime); echo \"$a $b\" | awk '{printf \"%d\", ($2 - $1) * 1000}'",
            Duration::from_secs(60),
        )?;
        ref_ms.push(out.trim().parse::<f64>().context("reference time")?);
        let (_, out) = vm.run("grep VmRSS /proc/$$/status", Duration::from_secs(60))?;
        ref_rss.push(kib(&out)? / 1024.0);
        let _ = vm.qmp().and_then(|mut q| q.quit());
    }
    println!(
        "\n== services: 20 trivial units (plus the image's own), median of {runs} boots under TCG"
    );
    println!(
        "  stage 2 start → all started  {:>7.0} ms   (target <= 300 ms)",
        median(since_stage2)
    );
    println!(
        "  manager start → all started  {:>7.0} ms",
        median(started_ms)
    );
    println!(
        "  first boot (applies the user-data, makes the SSH host key): stage 2 start → all started {:>7.0} ms",
        median(first_boot)
    );
    println!(
        "  reference: busybox sh forks 20 sleeps {:>5.0} ms",
        median(ref_ms)
    );
    println!(
        "  PID 1 resident memory        {:>7.2} MiB  (target <= 4 MiB)",
        median(rss)
    );
    println!(
        "  reference: busybox sh        {:>7.2} MiB",
        median(ref_rss)
    );
    Ok(())
}

/// `slipway: services started: N in X ms, F failed (stage 2 start +Y ms)`.
fn parse_services_line(line: &str) -> Option<(u32, f64, f64)> {
    let rest = line.split("services started: ").nth(1)?;
    let mut words = rest.split_whitespace();
    let count = words.next()?.parse().ok()?;
    let ms = words.nth(1)?.parse().ok()?;
    let s2 = rest
        .split("stage 2 start +")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((count, ms, s2))
}

/// `VmRSS:   1234 kB` → 1234.
fn kib(text: &str) -> Result<f64> {
    text.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no VmRSS in {text:?}"))
}

#[cfg(test)]
mod services_tests {
    use super::*;

    #[test]
    fn summary_line_parses() {
        assert_eq!(
            parse_services_line(
                "slipway: services started: 22 in 41 ms, 0 failed (stage 2 start +187 ms)"
            ),
            Some((22, 41.0, 187.0))
        );
        assert_eq!(parse_services_line("slipway: services started: x"), None);
        assert_eq!(kib("VmRSS:\t    2312 kB").unwrap(), 2312.0);
    }
}
