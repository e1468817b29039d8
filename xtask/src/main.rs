//! `cargo xtask`: the Slipway builder's command line. One dispatch over a
//! clap enum; the work happens in the `xtask` library and the format crates.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use xtask::build::{build_image, BuildOptions};
use xtask::host_setup::{self, Purpose};
use xtask::inputs::InputOptions;
use xtask::{bench, fuzz, paths, qemu, release, testing};

/// Build, boot and test Slipway images.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    help_expected = true,
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build a board's bootable UEFI disk image (disk.raw, disk.qcow2,
    /// manifest.json, SHA256SUMS, the signed update.payload) into
    /// target/slipway/images/<board>/
    BuildImage(BuildArgs),
    /// Boot the latest image in QEMU with its serial console on this
    /// terminal (Ctrl-C ends QEMU); with --cluster N, N machines on a
    /// private network
    Qemu(QemuArgs),
    /// Run the whole suite: build the image, then unit, host and VM boot tests
    Test(TestArgs),
    /// Check cloud-config user-data files: one finding per line as
    /// FILE:LINE:COL: level: message; exit status 1 if any error (or, with
    /// --strict, any warning), 2 if a file cannot be read
    ValidateConfig(ValidateArgs),
    /// Measure figures next to a reference measured in the same run
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Make an ed25519 key pair for signing updates: NAME.key (secret, mode
    /// 0600) and NAME.pub. The default is the development key that
    /// build-image uses when SLIPWAY_SIGNING_KEY is not set
    Keygen(KeygenArgs),
    /// Put the image's signed update payload into DIR and write the signed
    /// release feed DIR/<channel>/<board>.json pointing at it; serve DIR
    /// with any HTTP server (or `cargo xtask serve-updates DIR`)
    Publish(PublishArgs),
    /// Serve a published update directory over HTTP (GET, HEAD, Range) for
    /// tests and demos
    ServeUpdates(ServeArgs),
    /// Write a board's built disk.raw to a block device (a USB stick, a
    /// server's disk) or an image file, as slipway-install does on a
    /// machine: sparse, checked against SHA256SUMS, the partition table
    /// last with its backup at the target's end; refuses a mounted or busy
    /// disk, one smaller than the image, or one with partitions (unless
    /// --force)
    Install(InstallArgs),
    /// Prepare this machine for build-image or test (which both do this
    /// first themselves): the musl Rust target (rustup), the package lists,
    /// and the Debian packages they use (apt-get, as root). Not as root,
    /// print the commands to run instead
    Setup(SetupArgs),
    /// Run the cargo-fuzz targets (each crate's fuzz/ folder; needs the
    /// nightly toolchain and cargo-fuzz) one after the other, each for
    /// --runs executions, or list them. Prints each target's executions and
    /// time; fails if one finds a crash, naming the input. `cargo test`
    /// replays their regression inputs and seeds without a fuzzer
    Fuzz(FuzzArgs),
}

#[derive(Debug, Args)]
struct FuzzArgs {
    /// The target to run (see --list) [default: every target]
    #[arg(value_name = "TARGET")]
    target: Option<String>,
    /// Executions per target (libFuzzer's -runs=N)
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    runs: u64,
    /// List the targets with their folders and stop
    #[arg(long, conflicts_with_all = ["target", "runs", "no_seeds"])]
    list: bool,
    /// Do not write the crate's smoke-test seeds into fuzz/corpus/ first
    #[arg(long)]
    no_seeds: bool,
}

#[derive(Debug, Args)]
struct SetupArgs {
    /// The command to prepare for
    #[arg(long = "for", value_name = "COMMAND", value_enum, default_value_t = SetupFor::Test)]
    for_command: SetupFor,
    /// Change nothing: print the commands set-up would run; exit status 1
    /// if there are any
    #[arg(long)]
    check: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum SetupFor {
    /// `cargo xtask build-image` (with disk.qcow2)
    BuildImage,
    /// `cargo xtask test`: build-image's needs, QEMU, OVMF and the tools
    /// the tests run
    Test,
}

#[derive(Debug, Args)]
struct InstallArgs {
    /// The block device (e.g. /dev/sdX) or image file to write
    #[arg(long)]
    target: PathBuf,
    /// Board whose latest image to write
    #[arg(long, default_value = "qemu-x86_64")]
    board: String,
    /// Image to write instead: an output folder or its disk.raw
    #[arg(long)]
    image: Option<PathBuf>,
    /// cloud-config user-data the installed system applies at its first
    /// boot (validated first)
    #[arg(short = 'i', long = "user-data", value_name = "FILE")]
    user_data: Option<PathBuf>,
    /// Overwrite a target that has partitions
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct KeygenArgs {
    /// Folder for the key pair [default: target/slipway/keys]
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Base name of the files
    #[arg(long, default_value = "dev")]
    name: String,
    /// Replace an existing key (machines that trust the old one can then
    /// no longer be updated by releases signed with the new one)
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct PublishArgs {
    /// The folder to publish into (made if missing)
    dir: PathBuf,
    /// Release channel, the `group` machines follow (coreos.update.group)
    #[arg(long, default_value = "stable")]
    channel: String,
    /// Board whose latest image to publish
    #[arg(long, default_value = "qemu-x86_64")]
    board: String,
    /// Image folder to publish instead of the board's latest
    #[arg(long)]
    image: Option<PathBuf>,
    /// Days the feed stays valid; machines refuse an expired feed. Short on
    /// purpose: a machine shown an old feed (a stale mirror, a replay) sees
    /// it expire within this time, so publish at least this often
    #[arg(long, default_value_t = 7)]
    valid_days: u64,
    /// Secret key that signs the feed [default: $SLIPWAY_SIGNING_KEY, else
    /// the development key]
    #[arg(long)]
    key: Option<PathBuf>,
    /// Roll the release out in waves: SEEDS_BELOW@DELAY,… e.g.
    /// 512@0s,1024@1h,2048@4h. Each machine has a seed 0-2047 from its
    /// machine ID; seeds below 512 may install at once, below 1024 after
    /// an hour, the rest after 4 h (seeds at or above the last bound go
    /// with the last wave). Delays count from now, the feed's `published`:
    /// publishing again restarts them. Units d, h, m, s (1h30m). Without
    /// it every machine may install at once
    #[arg(long, value_name = "WAVES", value_parser = parse_waves)]
    waves: Option<Waves>,
}

/// `--waves`, parsed (clap wants one value type, not a `Vec` it would
/// split itself).
#[derive(Debug, Clone)]
struct Waves(Vec<slipway_update::waves::Wave>);

fn parse_waves(s: &str) -> std::result::Result<Waves, String> {
    slipway_update::waves::parse_spec(s).map(Waves)
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The published folder
    dir: PathBuf,
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    /// No line per request
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct BuildArgs {
    /// Board to build (a folder under board/)
    #[arg(long, default_value = "qemu-x86_64")]
    board: String,
    /// Output folder [default: target/slipway/images/<board>]
    #[arg(long)]
    out: Option<PathBuf>,
    /// OS version written to os-release and the boot entry
    #[arg(long = "os-version", default_value_t = xtask::build::default_version())]
    os_version: String,
    /// Your own kernel image instead of the board's kernel package
    #[arg(long, requires = "modules")]
    kernel: Option<PathBuf>,
    /// The lib/modules/<release> folder that goes with --kernel
    #[arg(long, requires = "kernel")]
    modules: Option<PathBuf>,
    /// Re-resolve the Debian packages to the archive's current versions and
    /// rewrite board/<board>/inputs.lock
    #[arg(long)]
    update_inputs: bool,
    /// Skip disk.qcow2 (no qemu-img needed)
    #[arg(long)]
    no_qcow2: bool,
    /// Development only: boot the root without dm-verity (the boot entry
    /// says slipway.verity=off and the init warns on every boot)
    #[arg(long)]
    insecure_no_verity: bool,
    /// Secret key that signs update.payload; its public half is baked into
    /// the image [default: $SLIPWAY_SIGNING_KEY, else the development key
    /// target/slipway/keys/dev.key, made if missing]
    #[arg(long)]
    key: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("seed").args(["user_data", "user_data_dir"])))]
struct QemuArgs {
    /// Board whose latest image to boot
    #[arg(long, default_value = "qemu-x86_64")]
    board: String,
    /// Image to boot instead: an output folder, or a disk.qcow2/disk.raw file
    #[arg(long)]
    image: Option<PathBuf>,
    /// Guest memory in MiB
    #[arg(long, default_value_t = 512)]
    memory: u32,
    /// Use KVM instead of TCG (only where KVM works)
    #[arg(long)]
    kvm: bool,
    /// Stop QEMU after this many seconds
    #[arg(long)]
    timeout: Option<u64>,
    /// Exit QEMU when the guest reboots
    #[arg(long)]
    no_reboot: bool,
    /// Give the VM a disk this big (e.g. 4G, 20G; K, M, G, T are powers of
    /// 1024) instead of the image's size: the image's /var grows into it
    /// at first boot. The image file itself is never changed
    #[arg(long, value_parser = xtask::util::parse_size)]
    disk_size: Option<u64>,
    /// Hand the guest this user-data (cloud-config or a `#!` script) on a
    /// NoCloud seed disk (FAT, label `cidata`); its instance ID follows the
    /// file's contents. With --cluster, every machine gets it
    #[arg(long, value_name = "FILE")]
    user_data: Option<PathBuf>,
    /// With --cluster: machine n's user-data is the file of DIR named n
    /// without its extension (1.yaml, 2.yaml, … or 3.sh); each machine
    /// needs one
    #[arg(long, value_name = "DIR", requires = "cluster", conflicts_with_all = ["user_data", "fw_cfg_user_data"])]
    user_data_dir: Option<PathBuf>,
    /// With --user-data or --user-data-dir: make an OpenStack ConfigDrive
    /// (label `config-2`) instead of a NoCloud seed
    #[arg(long, requires = "seed")]
    config_drive: bool,
    /// Hand the guest this user-data through QEMU's fw_cfg
    /// (opt/org.slipway/user-data) instead of a seed disk. With --cluster,
    /// every machine gets it
    #[arg(long, value_name = "FILE", conflicts_with = "user_data")]
    fw_cfg_user_data: Option<PathBuf>,
    /// Forward this port on 127.0.0.1 to the guest's SSH server (port 22):
    /// `ssh -p PORT core@127.0.0.1`. With --cluster, machine n gets
    /// PORT+n-1
    #[arg(long, value_name = "PORT")]
    ssh_port: Option<u16>,
    /// Start N machines (2 to 254), each with its own overlay and seed
    /// disk, sharing a private Ethernet network on their second NIC (eth1,
    /// MAC 52:54:00:12:34:<n in hex>; a switch in this process, over unix sockets:
    /// no host interface, no multicast) beside the usual user-mode eth0.
    /// Console lines are printed as `[n] …` and kept in
    /// target/slipway/vm-logs/qemu-cluster-<n>.log; a typed line goes to
    /// the console of the machine last picked with a line `@n`
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(2..=254))]
    cluster: Option<u16>,
    /// The boot disk's bus: a server's AHCI/SATA, NVMe or a USB stick
    /// (xhci) instead of virtio, for the generic-x86_64 board's drivers
    #[arg(long, value_enum, default_value_t = qemu::DiskBus::Virtio)]
    disk_bus: qemu::DiskBus,
    /// The model of eth0, the user-mode NIC: a server's Intel e1000e or
    /// e1000 instead of virtio-net
    #[arg(long, value_enum, default_value_t = qemu::NicModel::VirtioNet)]
    nic: qemu::NicModel,
    /// Add a standard VGA card, as a server's own display: the kernel
    /// draws tty0 on its framebuffer besides the serial console (QEMU still
    /// opens no window)
    #[arg(long)]
    vga: bool,
}

#[derive(Debug, Args)]
struct ValidateArgs {
    /// User-data files (cloud-config, `#!` scripts; gzip-compressed or not)
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Print the findings as JSON (one array, an object per file)
    #[arg(long)]
    json: bool,
    /// Fail on warnings too
    #[arg(long)]
    strict: bool,
}

#[derive(Debug, Args)]
struct TestArgs {
    /// Board whose image the VM tests boot
    #[arg(long, default_value = "qemu-x86_64")]
    board: String,
    /// Arguments for `cargo test` after `--` (a test name filter, --nocapture)
    #[arg(last = true)]
    cargo_test_args: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum BenchCmd {
    /// Warm build phase times, compressed image size, and boot time to the
    /// ready line next to a reference boot with a trivial init
    Build(BenchBuildArgs),
    /// dm-verity: our hash tree against `veritysetup format` on the same
    /// 1 GiB of data, and the boot-time cost of verity under TCG
    Verity(BenchBuildArgs),
    /// The service manager: PID 1's resident memory with 20 running
    /// services and the time from stage 2's start to all of them started,
    /// next to busybox references measured in the same VM
    Services(BenchBuildArgs),
    /// The update engine applying a signed payload (512 MiB of root data by
    /// default) to file-backed slot partitions, next to `dd bs=1M
    /// conv=fsync` of the same payload file, and the engine's peak
    /// resident memory
    Update(BenchUpdateArgs),
    /// Delta updates: release N and three N+1 that differ by one small
    /// change (a config file, a program, a kernel package), each installed
    /// from a server on loopback reusing N's pieces and as a whole payload:
    /// bytes downloaded and wall time, next to what fixed 1 MiB chunks and
    /// other piece sizes would have downloaded
    Delta(BenchDeltaArgs),
    /// The Docker engine: power-on to the first container answering HTTP
    /// (next to power-on to the ready line), `docker run --rm IMAGE true`
    /// next to `runc run` of the same bundle, and the compressed image size
    /// (xz and zstd) next to Talos's 89 MB xz; needs docker-registry and
    /// skopeo on the host
    Containers(BenchContainersArgs),
    /// A fleet of three machines on a private LAN: power-on to a healthy
    /// 3-member etcd, a rolling update under etcd-lock (publish to all
    /// blessed) next to one machine alone updating, and each machine's
    /// reboot-lock hold
    Cluster(BenchClusterArgs),
    /// Docker swarm mode on three machines: service create to every
    /// machine answering, a halted machine's replica running elsewhere,
    /// HTTP through the routing mesh next to a host-mode container
    Swarm(BenchClusterArgs),
}

#[derive(Debug, Args)]
struct BenchClusterArgs {
    /// Board to build and measure
    #[arg(long, default_value = "qemu-x86_64")]
    board: String,
    /// Measure this built image folder instead of building the board's
    #[arg(long)]
    image: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct BenchContainersArgs {
    /// Board to build and measure
    #[arg(long, default_value = "qemu-x86_64")]
    board: String,
    /// Measure this built image folder instead of building the board's
    #[arg(long)]
    image: Option<PathBuf>,
    /// Boots (medians are printed)
    #[arg(long, default_value_t = 1)]
    runs: usize,
}

#[derive(Debug, Args)]
struct BenchUpdateArgs {
    /// Runs per measurement (medians are printed; the machines here are
    /// noisy enough that fewer than about 9 say little)
    #[arg(long, default_value_t = 11)]
    runs: usize,
    /// Size of the payload's root image in MiB
    #[arg(long, default_value_t = 512)]
    size_mib: u64,
}

#[derive(Debug, Args)]
struct BenchDeltaArgs {
    /// Board to build and measure
    #[arg(long, default_value = "qemu-x86_64")]
    board: String,
    /// Runs per measurement (medians are printed)
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The kernel package of the kernel bump (default: the newest other
    /// `linux-image-<series>-N-<flavour>` apt knows), e.g. an older upstream
    /// release for a larger bump
    #[arg(long)]
    kernel_package: Option<String>,
}

#[derive(Debug, Args)]
struct BenchBuildArgs {
    /// Board to measure
    #[arg(long, default_value = "qemu-x86_64")]
    board: String,
    /// Runs per measurement (medians are printed)
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cmd: Cmd) -> Result<ExitCode> {
    match cmd {
        Cmd::BuildImage(a) => {
            let mut opts = BuildOptions::new(&a.board)?;
            // Before the guest programs compile: a missing tool found
            // after minutes of building is minutes lost.
            host_setup::ensure(Purpose::BuildImage { qcow2: !a.no_qcow2 }, false)?;
            opts.out_dir = a.out;
            opts.version = a.os_version;
            opts.qcow2 = !a.no_qcow2;
            opts.verity = !a.insecure_no_verity;
            opts.signing_key = a.key;
            opts.inputs = InputOptions {
                update: a.update_inputs,
                kernel_override: a.kernel.zip(a.modules),
            };
            let report = build_image(&opts)?;
            let total: f64 = report.phases.iter().map(|(_, d)| d.as_secs_f64()).sum();
            // The up-to-date check ends the phases early: nothing was built.
            let done = if report.phases.iter().any(|(p, _)| *p == "up-to-date") {
                "up to date:"
            } else {
                "built"
            };
            println!(
                "{done} {} {} (build {}) in {total:.1} s: {}",
                report.manifest.board,
                report.manifest.version,
                report.manifest.build_id,
                report.out_dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Qemu(a) => run_qemu(a),
        Cmd::Install(a) => run_install(a),
        Cmd::ValidateConfig(a) => {
            let args = cloud_config::cli::ValidateArgs {
                files: a.files,
                json: a.json,
                strict: a.strict,
            };
            let code = cloud_config::cli::run_validate(
                &args,
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            );
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
        Cmd::Test(a) => {
            host_setup::ensure(Purpose::Test, false)?;
            testing::run(&testing::TestArgs {
                board: a.board,
                cargo_test_args: a.cargo_test_args,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench(BenchCmd::Build(a)) => {
            bench::build(&a.board, a.runs.max(1))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench(BenchCmd::Verity(a)) => {
            bench::verity(&a.board, a.runs.max(1))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench(BenchCmd::Services(a)) => {
            bench::services(&a.board, a.runs.max(1))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench(BenchCmd::Update(a)) => {
            xtask::bench_update::run(&xtask::bench_update::Options {
                size_mib: a.size_mib,
                runs: a.runs.max(1),
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench(BenchCmd::Delta(a)) => {
            xtask::bench_delta::run(&xtask::bench_delta::Options {
                board: a.board,
                runs: a.runs.max(1),
                kernel_package: a.kernel_package,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench(BenchCmd::Containers(a)) => {
            xtask::bench_containers::run(&xtask::bench_containers::Options {
                board: a.board,
                image: a.image,
                runs: a.runs.max(1),
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench(BenchCmd::Swarm(a)) => {
            xtask::bench_swarm::run(&xtask::bench_swarm::Options {
                board: a.board,
                image: a.image,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bench(BenchCmd::Cluster(a)) => {
            xtask::bench_cluster::run(&xtask::bench_cluster::Options {
                board: a.board,
                image: a.image,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Keygen(a) => {
            let dir = a.dir.unwrap_or_else(release::keys_dir);
            let (path, public) = release::keygen(&dir, &a.name, a.force)?;
            println!(
                "wrote {} and {} (key ID {}); keep the .key secret, images built with it \
                 trust the .pub",
                path.display(),
                path.with_extension("pub").display(),
                public.id()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Publish(a) => {
            let published = release::publish_with_waves(
                &release::PublishOptions {
                    image_dir: a.image.unwrap_or_else(|| paths::image_dir(&a.board)),
                    dir: a.dir,
                    channel: a.channel,
                    valid_for: a.valid_days.saturating_mul(86_400),
                    key: a.key,
                },
                a.waves.as_ref().map(|w| &w.0[..]),
            )?;
            let r = &published.release;
            println!(
                "published {} {} on channel {}: {} (payload {}, {} bytes); the feed expires \
                 in {} days",
                r.board,
                r.version,
                r.channel,
                published.feed.display(),
                published.payload.display(),
                r.payload.size,
                (r.expires - r.published) / 86_400
            );
            println!(
                "delta index: {} (machines download only the pieces they lack)",
                published.index.display()
            );
            if let Some(w) = &r.waves {
                println!(
                    "rolling out in waves {} from {}",
                    slipway_update::waves::format_spec(w),
                    slipway_update::waves::utc(r.published)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Setup(a) => {
            let purpose = match a.for_command {
                SetupFor::BuildImage => Purpose::BuildImage { qcow2: true },
                SetupFor::Test => Purpose::Test,
            };
            host_setup::ensure(purpose, a.check)?;
            eprintln!(
                "setup: this machine has what `cargo xtask {}` needs",
                match a.for_command {
                    SetupFor::BuildImage => "build-image",
                    SetupFor::Test => "test",
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Fuzz(a) => run_fuzz(a),
        Cmd::ServeUpdates(a) => {
            xtask::serve::run(xtask::serve::ServeOptions {
                addr: a.addr,
                log: !a.quiet,
                ..xtask::serve::ServeOptions::new(a.dir)
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `cargo xtask fuzz`: list the targets, or run them one at a time.
fn run_fuzz(a: FuzzArgs) -> Result<ExitCode> {
    let root = paths::project_root();
    let all = fuzz::targets(&root)?;
    if a.list {
        for t in &all {
            println!("{:<18} {}", t.name, t.crate_dir.join("fuzz").display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let chosen: Vec<&fuzz::Target> = match &a.target {
        Some(name) => match all.iter().find(|t| &t.name == name) {
            Some(t) => vec![t],
            None => bail!(
                "no fuzz target {name}; there are: {}",
                all.iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
        None => all.iter().collect(),
    };
    fuzz::check_tools()?;
    let mut seeded = std::collections::BTreeSet::new();
    let mut outcomes = Vec::new();
    for t in chosen {
        if !a.no_seeds && seeded.insert(&t.package) {
            fuzz::write_seeds(&root, t)?;
        }
        eprintln!(
            "fuzz: {} ({}), {} executions",
            t.name,
            t.crate_dir.display(),
            a.runs
        );
        let outcome = fuzz::run(&root, t, a.runs)?;
        println!("{}", fuzz::summary_line(&outcome));
        outcomes.push(outcome);
    }
    if outcomes.len() > 1 {
        println!("\nsummary:");
        for o in &outcomes {
            println!("{}", fuzz::summary_line(o));
        }
    }
    let failed: Vec<&fuzz::Outcome> = outcomes.iter().filter(|o| !o.success).collect();
    for o in &failed {
        let dir = o.target.fuzz_dir(&root);
        let artifact = o
            .report
            .artifact
            .as_ref()
            .map_or("<artifact>".to_string(), |p| p.display().to_string());
        eprintln!(
            "{}: replay with `cd {} && cargo +nightly fuzz run {} {artifact}`; once fixed, \
             keep the input in {}/tests/fuzz_regressions/{}/",
            o.target.name,
            dir.display(),
            o.target.name,
            o.target.crate_dir.display(),
            o.target.name
        );
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `cargo xtask install`: the installer library on the build host.
fn run_install(a: InstallArgs) -> Result<ExitCode> {
    let image = match a.image {
        Some(p) if p.is_dir() => p.join("disk.raw"),
        Some(p) => p,
        None => paths::image_dir(&a.board).join("disk.raw"),
    };
    if !image.is_file() {
        bail!(
            "no image at {}: run `cargo xtask build-image --board {}` first",
            image.display(),
            a.board
        );
    }
    let opts = slipway_install::Options {
        source: slipway_install::SourceSpec::File(image.clone()),
        target: a.target,
        user_data: a.user_data,
        force: a.force,
        no_checksum: false,
    };
    let mut progress = slipway_install::Progress::auto("install");
    let report = slipway_install::install(&opts, &mut progress)?;
    println!(
        "installed {} on {}: {} written of a {} image ({} disk), {} zeroed, in {:.1} s",
        image.display(),
        opts.target.display(),
        slipway_install::human(report.written_bytes),
        slipway_install::human(report.image_bytes),
        slipway_install::human(report.target_bytes),
        slipway_install::human(report.zeroed_bytes),
        report.elapsed.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

fn run_qemu(a: QemuArgs) -> Result<ExitCode> {
    let image = match a.image {
        Some(p) if p.is_dir() => p.join("disk.qcow2"),
        Some(p) => p,
        None => paths::image_dir(&a.board).join("disk.qcow2"),
    };
    if !image.is_file() {
        bail!(
            "no image at {}: run `cargo xtask build-image` first",
            image.display()
        );
    }
    let kind = if a.config_drive {
        xtask::seed::SeedKind::ConfigDrive
    } else {
        xtask::seed::SeedKind::NoCloud
    };
    let mut machine = qemu::Machine::new(image);
    machine.memory_mib = a.memory;
    machine.kvm = a.kvm;
    machine.no_reboot = a.no_reboot;
    machine.disk_size = a.disk_size;
    machine.disk_bus = a.disk_bus;
    machine.nic = a.nic;
    machine.vga = a.vga;
    machine.fw_cfg_user_data = a.fw_cfg_user_data;
    machine.user_data = a.user_data.map(|file| (kind.clone(), file));
    if let Some(count) = a.cluster {
        let mut machines = Vec::new();
        for n in 1..=count {
            let mut m = machine.clone();
            if let Some(port) = a.ssh_port {
                let port = port
                    .checked_add(n - 1)
                    .with_context(|| format!("--ssh-port {port}: no port for machine {n}"))?;
                m.host_forwards.push((port, 22));
            }
            if let Some(dir) = &a.user_data_dir {
                let file = xtask::vm::cluster::user_data_for(dir, usize::from(n))?;
                m.user_data = Some((kind.clone(), file));
            }
            machines.push(m);
        }
        let ok = xtask::vm::cluster::run_foreground(
            machines,
            &xtask::vm::cluster::ForegroundOptions {
                timeout: a.timeout.map(Duration::from_secs),
                log_dir: paths::slipway_dir().join("vm-logs"),
            },
        )?;
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    machine.host_forwards.extend(a.ssh_port.map(|p| (p, 22)));
    let dir = tempfile::Builder::new().prefix("slipway-qemu-").tempdir()?;
    let (files, fw) = qemu::prepare(&machine, dir.path())?;
    let mut child = qemu::command(&machine, &files, &fw)?
        .spawn()
        .context("starting qemu")?;
    let deadline = a
        .timeout
        .map(|s| std::time::Instant::now() + Duration::from_secs(s));
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(if status.success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!(
                "\nqemu: stopped after {} s (--timeout)",
                a.timeout.unwrap_or(0)
            );
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn qemu_cluster_arguments() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(["cargo xtask", "qemu"].iter().chain(args)).map(|c| c.cmd)
        };
        let Ok(Cmd::Qemu(a)) = parse(&["--cluster", "3", "--user-data-dir", "d"]) else {
            panic!("--cluster 3 --user-data-dir d refused");
        };
        assert_eq!(a.cluster, Some(3));
        assert_eq!(a.user_data_dir, Some(PathBuf::from("d")));
        assert!(parse(&["--cluster", "1"]).is_err());
        assert!(parse(&["--cluster", "255"]).is_err());
        assert!(parse(&["--user-data-dir", "d"]).is_err());
        assert!(parse(&["--cluster", "2", "--user-data-dir", "d", "--user-data", "f"]).is_err());
        assert!(parse(&["--config-drive"]).is_err());
        assert!(parse(&["--cluster", "2", "--user-data-dir", "d", "--config-drive"]).is_ok());
    }

    #[test]
    fn qemu_hardware_flags() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(["xtask", "qemu"].iter().chain(args)).map(|c| c.cmd)
        };
        let Ok(Cmd::Qemu(a)) = parse(&[]) else {
            panic!("plain qemu refused");
        };
        assert_eq!(
            (a.disk_bus, a.nic, a.vga),
            (qemu::DiskBus::Virtio, qemu::NicModel::VirtioNet, false)
        );
        let Ok(Cmd::Qemu(a)) = parse(&["--disk-bus", "nvme", "--nic", "e1000e", "--vga"]) else {
            panic!("hardware flags refused");
        };
        assert_eq!(
            (a.disk_bus, a.nic, a.vga),
            (qemu::DiskBus::Nvme, qemu::NicModel::E1000e, true)
        );
        assert!(parse(&["--disk-bus", "scsi"]).is_err());
    }
}
