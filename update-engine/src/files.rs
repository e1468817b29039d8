//! The engine's own small files: JSON records written durably, and the
//! machine ID read. A leaf: the state, waves and lock modules all use it.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Where the machine's ID is (systemd's format: 32 hex digits).
pub const MACHINE_ID_PATH: &str = "/etc/machine-id";

/// The machine's ID from `path` (normally [`MACHINE_ID_PATH`]), the holder
/// name locksmith used.
pub fn machine_id(path: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let id = text.trim();
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        anyhow::bail!(
            "{}: {id:?} is not a machine ID (32 hex digits)",
            path.display()
        );
    }
    Ok(id.to_owned())
}

/// Writes `value` as pretty JSON to `path` by temporary name, fsync and
/// rename, then fsyncs the folder: a reader or a power cut sees the old
/// file or the new one, and the new one survives a reboot that follows
/// (the reboot-lock record depends on that). The engine's one writer of
/// its files under `/var/lib/slipway/update/`. Each call has its own
/// temporary name, so the daemon and an apply writing at once never write
/// into one temporary file.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    use slipway_boot_contract::atomic::{self, Durability};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    atomic::write_atomic_mode(path, &bytes, 0o644, Durability::Durable)
}

/// The JSON record at `path`, or the empty one (`Default`) when the file is
/// missing, or, with the reason, when it cannot be read or parsed: the
/// engine's records inform, they never stop an update.
pub fn read_json_or_default<T: DeserializeOwned + Default>(path: &Path) -> (T, Option<String>) {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(v) => (v, None),
            Err(e) => (
                T::default(),
                Some(format!("{}: ignored, not valid: {e}", path.display())),
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (T::default(), None),
        Err(e) => (T::default(), Some(format!("{}: {e}", path.display()))),
    }
}
