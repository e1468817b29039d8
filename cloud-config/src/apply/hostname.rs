//! The hostname (`/etc/hostname`; user-data wins over metadata) and
//! `manage_etc_hosts: localhost` (`/etc/hosts`).
//!
//! Only the file is written: the running kernel's hostname is the
//! caller's business.

use std::path::Path;

use super::fsops::{self, Owner};
use crate::validate::valid_hostname;

pub(crate) const HOSTNAME: &str = "/etc/hostname";
pub(crate) const HOSTS: &str = "/etc/hosts";

pub(crate) fn write_hostname(root: &Path, hostname: &str) -> Result<(), String> {
    if !valid_hostname(hostname) {
        return Err(format!("invalid hostname {hostname:?}"));
    }
    fsops::write_atomic(
        root,
        &fsops::under_root(root, HOSTNAME),
        format!("{hostname}\n").as_bytes(),
        0o644,
        Owner::default(),
    )
}

/// The `/etc/hosts` for `manage_etc_hosts: localhost`. A fully qualified
/// name is followed by its short form.
pub(crate) fn hosts_text(hostname: Option<&str>) -> String {
    let mut text = String::from(
        "# Written by slipway cloud-config (manage_etc_hosts: localhost)\n\
         127.0.0.1 localhost\n\
         ::1 localhost\n",
    );
    if let Some(h) = hostname.filter(|h| *h != "localhost") {
        match h.split_once('.') {
            Some((short, _)) => text.push_str(&format!("127.0.0.1 {h} {short}\n")),
            None => text.push_str(&format!("127.0.0.1 {h}\n")),
        }
    }
    text
}

pub(crate) fn write_hosts(root: &Path, hostname: Option<&str>) -> Result<(), String> {
    if let Some(h) = hostname {
        if !valid_hostname(h) {
            return Err(format!("invalid hostname {h:?}"));
        }
    }
    fsops::write_atomic(
        root,
        &fsops::under_root(root, HOSTS),
        hosts_text(hostname).as_bytes(),
        0o644,
        Owner::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(
            hosts_text(Some("node-1.example.com")),
            "# Written by slipway cloud-config (manage_etc_hosts: localhost)\n\
             127.0.0.1 localhost\n::1 localhost\n127.0.0.1 node-1.example.com node-1\n"
        );
        assert!(!hosts_text(None).contains("127.0.0.1 \n"));
        assert!(valid_hostname("a-b.c"));
        assert!(!valid_hostname("a b"));
        assert!(!valid_hostname("x\n127.0.0.1 evil"));
    }
}
