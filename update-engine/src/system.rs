//! The engine on a running machine: the ESP mounted where we can write
//! it, the trusted keys, the state file, and asking PID 1 to reboot.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use nix::mount::MsFlags;

use crate::esp::Esp;
use crate::keys::{TrustedKeys, TRUSTED_KEYS_DIR};
use crate::machine::Machine;

/// Where the engine mounts the ESP (a private, root-only place: nothing
/// else on the machine needs the boot files).
pub const ESP_MOUNT: &str = "/run/slipway/esp";
/// Held while checking for and making that mount.
pub const ESP_LOCK: &str = "/run/slipway/esp.lock";

/// Everything a command needs about this machine.
#[derive(Debug)]
pub struct System {
    pub machine: Machine,
    pub esp: Esp,
}

impl System {
    pub fn open() -> Result<System> {
        let machine = Machine::discover()?;
        let esp_part = machine.esp()?;
        mount_esp(&esp_part.dev, Path::new(ESP_MOUNT))?;
        Ok(System {
            machine,
            esp: Esp::new(ESP_MOUNT),
        })
    }

    pub fn trusted_keys() -> Result<TrustedKeys> {
        Ok(TrustedKeys::load_dir(Path::new(TRUSTED_KEYS_DIR))?)
    }
}

/// Mounts the FAT ESP at `dir` unless it already is there. Several
/// engine processes may start at once (PID 1's health hook, the daemon, a
/// person's `status`): a lock makes the check and the mount one step, since
/// two FAT mounts of one device (stacked on the same folder) would each
/// cache their own view of the directories and corrupt them.
pub fn mount_esp(dev: &Path, dir: &Path) -> Result<()> {
    let lock_path = Path::new(ESP_LOCK);
    if let Some(parent) = lock_path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let lock_file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow!("locking {}: {}", lock_path.display(), e.desc()))?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let target = dir.display().to_string();
    if mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(target.as_str()))
    {
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    nix::mount::mount(
        Some(dev),
        dir,
        Some("vfat"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        // Root only: the ESP holds every slot's command line.
        Some("umask=0077"),
    )
    .map_err(|e| {
        anyhow!(
            "mounting the ESP {} on {}: {}",
            dev.display(),
            dir.display(),
            e.desc()
        )
    })
}

/// Asks the service manager for a clean reboot.
pub fn request_reboot() -> Result<()> {
    let socket = slipway_control::socket_path();
    let resp = slipway_control::call(
        &socket,
        &slipway_control::Request::Reboot,
        Duration::from_secs(10),
    )
    .with_context(|| {
        format!(
            "asking the service manager ({}) to reboot",
            socket.display()
        )
    })?;
    if let Some(e) = resp.error {
        bail!("the service manager refused to reboot: {e}");
    }
    Ok(())
}

/// The lock that serialises applies (`/run/slipway/update.lock`).
pub const LOCK_FILE: &str = "/run/slipway/update.lock";

/// Takes the apply lock or says who holds it.
pub fn lock_apply() -> Result<nix::fcntl::Flock<std::fs::File>> {
    use std::io::{Read, Seek, Write};
    let path = Path::new(LOCK_FILE);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(mut locked) => {
            // Record the holder for the next one's message.
            let _ = locked.set_len(0);
            let _ = locked.rewind();
            let _ = write!(locked, "{}", std::process::id());
            Ok(locked)
        }
        Err((mut file, _)) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            bail!(
                "another update is being applied (pid {}); try again when it is done",
                holder.trim()
            )
        }
    }
}
