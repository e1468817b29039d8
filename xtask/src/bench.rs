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

pub fn build(board: &str, runs: usize) -> Result<()> {
    // 1. Warm rebuilds: inputs cached and the init built by a first run.
    let opts = BuildOptions::new(board)?;
    eprintln!("bench: first build (warms the caches, not counted)");
    let first = build_image(&opts)?;
    let mut phase_runs: Vec<Vec<(&'static str, Duration)>> = Vec::new();
    for i in 0..runs {
        eprintln!("bench: warm build {}/{runs}", i + 1);
        phase_runs.push(build_image(&opts)?.phases);
    }
    println!("\n== warm build-image, median of {runs} (target: total <= 5 s)");
    let names: Vec<&str> = phase_runs[0].iter().map(|(n, _)| *n).collect();
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
    let totals = phase_runs
        .iter()
        .map(|r| r.iter().map(|(_, d)| d.as_secs_f64()).sum())
        .collect();
    println!("  {:<12} {:>7.2} s", "total", median(totals));

    // 2. The image compressed as a user would ship it.
    let raw = first.out_dir.join("disk.raw");
    let t = Instant::now();
    let size = zstd_size(&raw)?;
    println!(
        "\n== disk.raw compressed with zstd -3: {:.1} MB (target <= 60 MB; {:.1} s to compress)",
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
