//! `/etc/resolv.conf`: rendered from every link's DNS servers and search
//! domains, written atomically (temporary file in the same directory, then
//! rename) so a reader never sees half a file.

use std::io;
use std::net::IpAddr;
use std::path::Path;

/// The file's text: a header, `nameserver` lines (deduplicated, in order),
/// and one `search` line.
pub fn render(servers: &[IpAddr], domains: &[String]) -> String {
    let mut out = String::from("# Written by slipway-networkd; changes are overwritten.\n");
    let mut seen: Vec<&IpAddr> = Vec::new();
    for s in servers {
        if !seen.contains(&s) {
            seen.push(s);
            out.push_str(&format!("nameserver {s}\n"));
        }
    }
    let mut search: Vec<&str> = Vec::new();
    for d in domains {
        if !search.contains(&d.as_str()) {
            search.push(d);
        }
    }
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    out
}

/// Replaces `path` with `content` (creating its folder): readers see the
/// old file or the new one, and the new one survives a power cut.
pub fn write_atomic(path: &Path, content: &str) -> io::Result<()> {
    use slipway_boot_contract::atomic::{self, Durability};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    atomic::write_atomic(path, content.as_bytes(), Durability::Durable)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn renders_dedup_and_search() {
        let ips: Vec<IpAddr> = ["10.0.2.3", "1.1.1.1", "10.0.2.3", "2620:fe::fe"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let text = render(&ips, &["corp".into(), "example.com".into(), "corp".into()]);
        assert_eq!(
            text,
            "# Written by slipway-networkd; changes are overwritten.\n\
             nameserver 10.0.2.3\nnameserver 1.1.1.1\nnameserver 2620:fe::fe\nsearch corp example.com\n"
        );
        assert!(!render(&[], &[]).contains("search"));
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/resolv.conf");
        write_atomic(&path, "a\n").unwrap();
        write_atomic(&path, "b\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b\n");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }
}
