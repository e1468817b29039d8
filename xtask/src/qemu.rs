//! Running an image in QEMU: OVMF firmware with a fresh copy of its VARS
//! per run, the image behind a qcow2 overlay (the built image is never
//! modified), serial console, user-mode networking (and optionally a second
//! NIC on a private LAN, [`crate::vm::lan`]), TCG unless asked for KVM.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::seed::{write_seed, SeedKind};
use crate::util::which;
use crate::vm::lan::LanPort;

pub const QEMU: &str = "qemu-system-x86_64";

/// Where Debian's `ovmf` package puts the 4 MiB firmware (and older names).
const OVMF_CANDIDATES: &[(&str, &str)] = &[
    (
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.fd",
    ),
    (
        "/usr/share/OVMF/OVMF_CODE.fd",
        "/usr/share/OVMF/OVMF_VARS.fd",
    ),
    (
        "/usr/share/edk2/ovmf/OVMF_CODE.fd",
        "/usr/share/edk2/ovmf/OVMF_VARS.fd",
    ),
];

#[derive(Debug, Clone)]
pub struct Firmware {
    pub code: PathBuf,
    pub vars: PathBuf,
}

pub fn find_ovmf() -> Result<Firmware> {
    OVMF_CANDIDATES
        .iter()
        .map(|(c, v)| Firmware {
            code: PathBuf::from(c),
            vars: PathBuf::from(v),
        })
        .find(|f| f.code.is_file() && f.vars.is_file())
        .with_context(|| {
            format!(
                "OVMF firmware not found (looked for {}): install it with `apt-get install ovmf`",
                OVMF_CANDIDATES
                    .iter()
                    .map(|(c, _)| *c)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

pub fn find_qemu() -> Result<PathBuf> {
    which(QEMU).with_context(|| {
        format!("{QEMU} not found: install it with `apt-get install qemu-system-x86`")
    })
}

/// The bus of the boot disk. Virtio is what clouds give a VM; the others
/// are what a server's own disks sit on, so the `generic-x86_64` board's
/// drivers (and the firmware's) are exercised as on bare metal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DiskBus {
    /// virtio-blk (`/dev/vda`).
    #[default]
    Virtio,
    /// A SATA disk on the q35 chipset's own ICH9 AHCI controller
    /// (`/dev/sda`, through `ahci` and `sd_mod`).
    Ahci,
    /// An NVMe controller with one namespace (`/dev/nvme0n1`).
    Nvme,
    /// A USB stick: USB mass storage (bulk-only) on an xHCI controller
    /// (`/dev/sda`, through `xhci_pci`, `usb_storage` and `sd_mod`).
    Usb,
}

/// The model of the user-mode NIC (the guest's `eth0`). QEMU 7.2, Debian
/// 12's, has no `igb` (it came with 8.0), so the Intel server NICs it can
/// show are the 82574L (`e1000e`) and the older 8254x (`e1000`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum NicModel {
    /// virtio-net-pci, what clouds give a VM.
    #[default]
    VirtioNet,
    /// Intel 82574L, the `e1000e` driver.
    E1000e,
    /// Intel 82540EM, the `e1000` driver.
    E1000,
}

impl NicModel {
    /// QEMU's `-device` name.
    pub fn device(self) -> &'static str {
        match self {
            NicModel::VirtioNet => "virtio-net-pci",
            NicModel::E1000e => "e1000e",
            NicModel::E1000 => "e1000",
        }
    }
}

/// How to boot: through the firmware from the disk, or straight into a
/// kernel (faster; used for tests of the initramfs alone).
#[derive(Debug, Clone)]
pub enum Boot {
    Firmware,
    Kernel {
        kernel: PathBuf,
        initrd: PathBuf,
        append: String,
    },
}

#[derive(Debug, Clone)]
pub struct Machine {
    /// The base image (`disk.qcow2` or `disk.raw`); never written.
    pub image: PathBuf,
    pub memory_mib: u32,
    pub kvm: bool,
    /// Exit instead of rebooting (tests see a reboot as QEMU ending).
    pub no_reboot: bool,
    pub boot: Boot,
    /// Grow the overlay to this size (bytes) to test a bigger disk.
    pub disk_size: Option<u64>,
    /// The boot disk's bus (the seed disk stays virtio).
    pub disk_bus: DiskBus,
    /// The user-mode NIC's model (the LAN NIC stays virtio).
    pub nic: NicModel,
    /// A standard VGA adapter, as a server's BMC gives: OVMF draws on it,
    /// the kernel's efifb takes it over and `tty0` becomes a framebuffer
    /// console. Off by default, which keeps the command line the VM tests
    /// always had; its cost is lost in the noise (the generic board under
    /// TCG: 19.6 and 25.0 s to the ready line with it, 20.0 and 31.3 s
    /// without, on a shared host).
    pub vga: bool,
    /// Forward a host port to a guest port over user networking.
    pub host_forwards: Vec<(u16, u16)>,
    /// More `-netdev user` options (a guest network, `guestfwd`), such as
    /// [`crate::imds::netdev_options`].
    pub user_net_options: Option<String>,
    /// Bytes to write into the overlay before boot (disk offset, value):
    /// tamper tests change the disk the guest sees, never the image.
    pub patches: Vec<(u64, u8)>,
    /// User-data to hand the guest on a seed disk (the second virtio disk,
    /// read-only), made fresh for each run.
    pub user_data: Option<(SeedKind, PathBuf)>,
    /// User-data handed over by QEMU's fw_cfg instead
    /// (`opt/org.slipway/user-data`, which the guest reads from sysfs).
    pub fw_cfg_user_data: Option<PathBuf>,
    /// A second NIC (the guest's `eth1`, after the user-mode `eth0`) on a
    /// private LAN shared with other machines.
    pub lan: Option<LanPort>,
    pub extra_args: Vec<String>,
}

impl Machine {
    pub fn new(image: PathBuf) -> Self {
        Self {
            image,
            memory_mib: 512,
            kvm: false,
            no_reboot: false,
            boot: Boot::Firmware,
            disk_size: None,
            disk_bus: DiskBus::Virtio,
            nic: NicModel::VirtioNet,
            vga: false,
            host_forwards: Vec::new(),
            user_net_options: None,
            patches: Vec::new(),
            user_data: None,
            fw_cfg_user_data: None,
            lan: None,
            extra_args: Vec::new(),
        }
    }
}

/// Files of one run: the overlay and the VARS copy, in a folder the caller
/// owns (and removes).
#[derive(Debug)]
pub struct RunFiles {
    pub overlay: PathBuf,
    pub vars: PathBuf,
    pub qmp: PathBuf,
    /// The user-data seed disk, if the machine has one.
    pub seed: Option<PathBuf>,
}

/// Creates the overlay and firmware VARS copy in `dir`.
pub fn prepare(machine: &Machine, dir: &Path) -> Result<(RunFiles, Firmware)> {
    let fw = find_ovmf()?;
    let image = machine.image.canonicalize().with_context(|| {
        format!(
            "image {} not found: run `cargo xtask build-image`",
            machine.image.display()
        )
    })?;
    let format = if image.extension().is_some_and(|e| e == "qcow2") {
        "qcow2"
    } else {
        "raw"
    };
    let overlay = dir.join("overlay.qcow2");
    let mut cmd = Command::new("qemu-img");
    cmd.args(["create", "-q", "-f", "qcow2", "-F", format, "-b"])
        .arg(&image)
        .arg(&overlay);
    if let Some(size) = machine.disk_size {
        cmd.arg(size.to_string());
    }
    let out = cmd
        .output()
        .context("running qemu-img (apt-get install qemu-utils)")?;
    if !out.status.success() {
        bail!(
            "qemu-img create {} failed: {}",
            overlay.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    for (offset, value) in &machine.patches {
        let out = Command::new("qemu-io")
            .args([
                "-f",
                "qcow2",
                "-c",
                &format!("write -P {value:#04x} {offset} 1"),
            ])
            .arg(&overlay)
            .output()
            .context("running qemu-io (apt-get install qemu-utils)")?;
        if !out.status.success() {
            bail!(
                "qemu-io writing byte {value:#04x} at {offset} of {} failed: {}",
                overlay.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    let vars = dir.join("OVMF_VARS.fd");
    std::fs::copy(&fw.vars, &vars)
        .with_context(|| format!("copying {} to {}", fw.vars.display(), vars.display()))?;
    let qmp = dir.join("qmp.sock");
    if let Some(port) = &machine.lan {
        // QEMU binds the port's socket and leaves the file behind when it
        // exits; a machine started again on its port must bind anew.
        match std::fs::remove_file(&port.local) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", port.local.display()))
            }
            _ => {}
        }
    }
    let seed = match &machine.user_data {
        Some((kind, user_data)) => {
            let bytes = std::fs::read(user_data)
                .with_context(|| format!("reading user-data {}", user_data.display()))?;
            let seed = dir.join("seed.img");
            write_seed(kind, &bytes, &seed)?;
            Some(seed)
        }
        None => None,
    };
    Ok((
        RunFiles {
            overlay,
            vars,
            qmp,
            seed,
        },
        fw,
    ))
}

/// The boot disk's arguments. A disk off virtio is the firmware's first
/// boot option (`bootindex=0`, which QEMU hands OVMF as its boot order):
/// as on a server set to boot the disk the image was written to, ahead
/// of the NIC's PXE ROM. (Virtio keeps the command line it always had.)
fn disk_args(bus: DiskBus, overlay: &Path) -> Vec<String> {
    let file = format!("format=qcow2,file={}", overlay.display());
    let devices: &[&str] = match bus {
        DiskBus::Virtio => return vec!["-drive".into(), format!("if=virtio,{file}")],
        // q35's built-in AHCI controller (00:1f.2) has six ports, ide.0-5.
        DiskBus::Ahci => &["ide-hd,drive=disk0,bus=ide.0,bootindex=0"],
        // QEMU requires a serial number for an NVMe controller.
        DiskBus::Nvme => &["nvme,drive=disk0,serial=slipway0,bootindex=0"],
        DiskBus::Usb => &[
            "qemu-xhci,id=xhci",
            "usb-storage,bus=xhci.0,drive=disk0,bootindex=0",
        ],
    };
    let mut args = vec!["-drive".to_string(), format!("if=none,id=disk0,{file}")];
    for device in devices {
        args.extend(["-device".to_string(), device.to_string()]);
    }
    args
}

/// The QEMU command line; serial on stdio, a QMP socket at `files.qmp`.
pub fn command(machine: &Machine, files: &RunFiles, fw: &Firmware) -> Result<Command> {
    let qemu = find_qemu()?;
    let mut cmd = Command::new(qemu);
    let accel = if machine.kvm { "kvm" } else { "tcg" };
    let mut netdev = "user,id=net0".to_string();
    for (host, guest) in &machine.host_forwards {
        netdev += &format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}");
    }
    if let Some(options) = &machine.user_net_options {
        netdev += &format!(",{options}");
    }
    cmd.args(["-machine", "q35", "-accel", accel, "-cpu", "max"])
        .args(["-m", &machine.memory_mib.to_string(), "-smp", "1"])
        .args(["-nodefaults", "-display", "none", "-serial", "stdio"])
        .args(["-monitor", "none"])
        .arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={}",
            fw.code.display()
        ))
        .arg("-drive")
        .arg(format!(
            "if=pflash,format=raw,unit=1,file={}",
            files.vars.display()
        ))
        .args(disk_args(machine.disk_bus, &files.overlay))
        .args(["-netdev", &netdev, "-device"])
        .arg(format!("{},netdev=net0", machine.nic.device()));
    // After the user-mode NIC: PCI order makes it the guest's eth1.
    if let Some(port) = &machine.lan {
        cmd.args(port.qemu_args("lan0")?);
    }
    if machine.vga {
        cmd.args(["-device", "VGA"]);
    }
    if let Some(file) = &machine.fw_cfg_user_data {
        // QEMU splits -fw_cfg options at commas; a path with one cannot be
        // passed this way.
        let path = file
            .canonicalize()
            .with_context(|| format!("user-data {}", file.display()))?;
        if path.to_string_lossy().contains(',') {
            bail!(
                "the fw_cfg user-data path {} contains a comma",
                path.display()
            );
        }
        cmd.arg("-fw_cfg").arg(format!(
            "name=opt/org.slipway/user-data,file={}",
            path.display()
        ));
    }
    if let Some(seed) = &files.seed {
        cmd.arg("-drive").arg(format!(
            "if=virtio,format=raw,readonly=on,file={}",
            seed.display()
        ));
    }
    cmd.arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", files.qmp.display()));
    if machine.no_reboot {
        cmd.arg("-no-reboot");
    }
    if let Boot::Kernel {
        kernel,
        initrd,
        append,
    } = &machine.boot
    {
        cmd.arg("-kernel")
            .arg(kernel)
            .arg("-initrd")
            .arg(initrd)
            .arg("-append")
            .arg(append);
    }
    cmd.args(&machine.extra_args);
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_disk_and_nic_are_virtio_as_before() {
        let machine = Machine::new(PathBuf::from("disk.qcow2"));
        assert_eq!(
            disk_args(machine.disk_bus, Path::new("/t/overlay.qcow2")),
            ["-drive", "if=virtio,format=qcow2,file=/t/overlay.qcow2"]
        );
        assert_eq!(machine.nic.device(), "virtio-net-pci");
    }

    #[test]
    fn other_buses_attach_the_overlay_to_their_controller_as_first_boot_option() {
        let args = |bus| disk_args(bus, Path::new("/t/o.qcow2")).join(" ");
        let drive = "-drive if=none,id=disk0,format=qcow2,file=/t/o.qcow2";
        assert_eq!(
            args(DiskBus::Ahci),
            format!("{drive} -device ide-hd,drive=disk0,bus=ide.0,bootindex=0")
        );
        assert_eq!(
            args(DiskBus::Nvme),
            format!("{drive} -device nvme,drive=disk0,serial=slipway0,bootindex=0")
        );
        assert_eq!(
            args(DiskBus::Usb),
            format!(
                "{drive} -device qemu-xhci,id=xhci \
                 -device usb-storage,bus=xhci.0,drive=disk0,bootindex=0"
            )
        );
    }
}
