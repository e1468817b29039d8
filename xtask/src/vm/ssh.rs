//! Logging in to a guest as `core` over a forwarded port, with a key pair
//! made for the test (OpenSSH's client and ssh-keygen on the host).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh ed25519 key pair in `dir`: the private key's path and the public
/// key's line (for `ssh_authorized_keys` in user-data).
pub fn keygen(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("id_ed25519");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test@host", "-f"])
        .arg(&key)
        .status()
        .expect("running ssh-keygen (apt-get install openssh-client)");
    assert!(status.success(), "ssh-keygen failed");
    let public =
        std::fs::read_to_string(key.with_extension("pub")).expect("reading the public key");
    (key, public.trim().to_string())
}

/// `ssh core@127.0.0.1 -p PORT COMMAND` with `key`, never asking anything
/// (no host key check, batch mode), `extra` options before the host.
pub fn ssh_core(key: &Path, port: u16, extra: &[&str], command: &str) -> Output {
    Command::new("ssh")
        .arg("-i")
        .arg(key)
        .args([
            "-p",
            &port.to_string(),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=20",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
        ])
        .args(extra)
        .arg("core@127.0.0.1")
        .arg(command)
        .output()
        .expect("running ssh (apt-get install openssh-client)")
}
