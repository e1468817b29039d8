//! Finding links through sysfs (`/sys/class/net/<name>/{ifindex,type,address}`),
//! polled every few seconds so hotplugged links are picked up.

use std::path::Path;

/// ARPHRD_ETHER.
pub const ARPHRD_ETHER: u16 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub name: String,
    pub index: u32,
    /// ARPHRD_* from `type`.
    pub kind: u16,
    pub mac: Option<[u8; 6]>,
    /// Backed by a device (`device` link): not a bridge, veth, dummy, tun….
    pub physical: bool,
    /// Enslaved to a bridge or bond (`master` link).
    pub enslaved: bool,
}

impl LinkInfo {
    /// Ethernet links that get DHCP when no `.network` file matches them:
    /// physical, not part of a bridge or bond.
    pub fn default_dhcp(&self) -> bool {
        self.kind == ARPHRD_ETHER && self.physical && !self.enslaved
    }
}

/// Every link under `class_net` (normally `/sys/class/net`), by name.
/// Links whose attributes cannot be read (vanishing right now) are skipped.
pub fn scan(class_net: &Path) -> Vec<LinkInfo> {
    let Ok(entries) = std::fs::read_dir(class_net) else {
        return Vec::new();
    };
    let mut links: Vec<LinkInfo> = entries
        .flatten()
        .filter_map(|e| read_link(&e.path(), &e.file_name().to_string_lossy()))
        .collect();
    links.sort_by(|a, b| a.name.cmp(&b.name));
    links
}

fn read_link(dir: &Path, name: &str) -> Option<LinkInfo> {
    let read = |attr: &str| std::fs::read_to_string(dir.join(attr)).ok();
    let index = read("ifindex")?.trim().parse().ok()?;
    let kind = read("type")?.trim().parse().ok()?;
    let mac = read("address").and_then(|a| crate::config::parse_mac(a.trim()).ok());
    Some(LinkInfo {
        name: name.to_string(),
        index,
        kind,
        mac,
        physical: dir.join("device").exists(),
        enslaved: dir.join("master").exists(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn scans_a_fake_sysfs() {
        let root = tempfile::tempdir().unwrap();
        let mk = |name: &str, index: &str, kind: &str, mac: &str, extra: &[&str]| {
            let d = root.path().join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("ifindex"), index).unwrap();
            std::fs::write(d.join("type"), kind).unwrap();
            std::fs::write(d.join("address"), mac).unwrap();
            for e in extra {
                std::fs::create_dir_all(d.join(e)).unwrap();
            }
        };
        mk("lo", "1\n", "772\n", "00:00:00:00:00:00\n", &[]);
        mk("eth0", "2\n", "1\n", "52:54:00:12:34:56\n", &["device"]);
        mk("veth0", "3\n", "1\n", "aa:bb:cc:dd:ee:ff\n", &[]);
        mk(
            "eth1",
            "4\n",
            "1\n",
            "52:54:00:12:34:57\n",
            &["device", "master"],
        );
        std::fs::create_dir_all(root.path().join("broken")).unwrap();
        let links = scan(root.path());
        let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, vec!["eth0", "eth1", "lo", "veth0"]);
        assert_eq!(links[0].index, 2);
        assert_eq!(links[0].mac, Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
        let dhcp: Vec<&str> = links
            .iter()
            .filter(|l| l.default_dhcp())
            .map(|l| l.name.as_str())
            .collect();
        assert_eq!(dhcp, vec!["eth0"]);
    }
}
