//! systemd-networkd style `.network` files: the subset Slipway applies.
//!
//! Parsing is pure: [`parse`] turns one file's text into a [`NetworkFile`]
//! and a list of [`Warning`]s, each naming the file and the 1-based line. A
//! bad line never stops the rest of the file; [`load`] reads the search path
//! (`/etc`, `/run`, `/usr/lib` — the first directory wins per file name) and
//! returns the files in name order; [`find`] picks the first file that
//! matches a link.
//!
//! Supported: `[Match] Name=` (space-separated globs, a leading `!` negates),
//! `MACAddress=`; `[Network] Address=`, `Gateway=`, `DNS=`, `DHCP=`,
//! `Domains=`; `[Address] Address=`; `[Route] Gateway=` (a default route).
//! As in systemd, a list key with an empty value resets the list, and a file
//! that matches a link but says nothing about `DHCP=` means `DHCP=no`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The directories searched, highest priority first (relative to the root).
pub const SEARCH_DIRS: [&str; 3] = [
    "etc/systemd/network",
    "run/systemd/network",
    "usr/lib/systemd/network",
];

/// An address with its prefix length, as written in `Address=10.0.0.2/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/PREFIX` or a bare address (then the full length: /32, /128).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| format!("{addr_text:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("{p:?} is not a prefix length (0-{max})")),
            },
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// What `DHCP=` asks for. Only DHCPv4 is implemented; `ipv6` is accepted
/// with a warning and means no DHCP here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dhcp {
    V4,
    No,
}

/// One parsed `.network` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkFile {
    /// The file name (`10-eth.network`), which orders the files.
    pub name: String,
    pub path: PathBuf,
    /// `[Match] Name=` globs; empty matches every name.
    pub match_names: Vec<String>,
    /// `Name=!eth0 eth1`: the list names links that do *not* match.
    pub match_names_negated: bool,
    /// `[Match] MACAddress=`; empty matches every address.
    pub match_macs: Vec<[u8; 6]>,
    pub addresses: Vec<Cidr>,
    pub gateways: Vec<IpAddr>,
    pub dns: Vec<IpAddr>,
    /// `None` when the file does not say (systemd's default: no DHCP).
    pub dhcp: Option<Dhcp>,
    pub domains: Vec<String>,
}

impl NetworkFile {
    fn empty(name: &str, path: &Path) -> NetworkFile {
        NetworkFile {
            name: name.to_string(),
            path: path.to_path_buf(),
            match_names: Vec::new(),
            match_names_negated: false,
            match_macs: Vec::new(),
            addresses: Vec::new(),
            gateways: Vec::new(),
            dns: Vec::new(),
            dhcp: None,
            domains: Vec::new(),
        }
    }

    /// Whether DHCPv4 runs on a link this file matched.
    pub fn wants_dhcp4(&self) -> bool {
        self.dhcp == Some(Dhcp::V4)
    }

    /// Whether the file matches a link with this name and MAC address.
    pub fn matches(&self, ifname: &str, mac: Option<[u8; 6]>) -> bool {
        let name_ok = self.match_names.is_empty()
            || self.match_names.iter().any(|g| glob_match(g, ifname)) != self.match_names_negated;
        let mac_ok =
            self.match_macs.is_empty() || mac.is_some_and(|m| self.match_macs.contains(&m));
        name_ok && mac_ok
    }
}

/// A problem in a file: shown as `FILE:LINE: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub path: PathBuf,
    /// 1-based; 0 when the problem is about the whole file.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.path.display(), self.line, self.message)
        }
    }
}

/// Parses the text of one `.network` file.
pub fn parse(path: &Path, text: &str) -> (NetworkFile, Vec<Warning>) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut file = NetworkFile::empty(&name, path);
    let mut warnings = Vec::new();
    let mut section: Option<String> = None;
    let mut saw_match = false;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let mut warn = |message: String| {
            warnings.push(Warning {
                path: path.to_path_buf(),
                line: line_no,
                message,
            })
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            match rest.strip_suffix(']') {
                Some(s) => {
                    let s = s.trim();
                    if !matches!(s, "Match" | "Network" | "Address" | "Route") {
                        warn(format!("unsupported section [{s}], ignored"));
                    }
                    saw_match |= s == "Match";
                    section = Some(s.to_string());
                }
                None => warn(format!("bad section header {line:?}")),
            }
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            warn(format!("expected KEY=VALUE, found {line:?}"));
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match section.as_deref() {
            None => warn(format!("{key}= outside of any section, ignored")),
            Some("Match") => parse_match(&mut file, key, value, &mut warn),
            Some("Network") => parse_network(&mut file, key, value, &mut warn),
            Some("Address") => match key {
                "Address" => push_list(&mut file.addresses, value, Cidr::parse, &mut warn),
                _ => warn(format!("unsupported key {key}= in [Address], ignored")),
            },
            Some("Route") => match key {
                "Gateway" => push_list(&mut file.gateways, value, parse_ip, &mut warn),
                _ => warn(format!("unsupported key {key}= in [Route], ignored")),
            },
            // Already warned about at the section header.
            Some(_) => {}
        }
    }
    if !saw_match {
        warnings.push(Warning {
            path: path.to_path_buf(),
            line: 0,
            message: "no [Match] section: the file matches every link".to_string(),
        });
    }
    (file, warnings)
}

fn parse_match(file: &mut NetworkFile, key: &str, value: &str, warn: &mut dyn FnMut(String)) {
    match key {
        "Name" => {
            if value.is_empty() {
                file.match_names.clear();
                file.match_names_negated = false;
                return;
            }
            let (negated, list) = match value.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, value),
            };
            if !file.match_names.is_empty() && negated != file.match_names_negated {
                warn("Name= mixes negated and plain lists; using this line only".to_string());
                file.match_names.clear();
            }
            file.match_names_negated = negated;
            file.match_names
                .extend(list.split_whitespace().map(str::to_string));
        }
        "MACAddress" => push_list(&mut file.match_macs, value, parse_mac, warn),
        _ => warn(format!("unsupported key {key}= in [Match], ignored")),
    }
}

fn parse_network(file: &mut NetworkFile, key: &str, value: &str, warn: &mut dyn FnMut(String)) {
    match key {
        "Address" => push_list(&mut file.addresses, value, Cidr::parse, warn),
        "Gateway" => push_list(&mut file.gateways, value, parse_ip, warn),
        "DNS" => push_list(&mut file.dns, value, parse_ip, warn),
        "Domains" => {
            if value.is_empty() {
                file.domains.clear();
            }
            for d in value.split_whitespace() {
                // `~example.com` is a routing-only domain in systemd-resolved;
                // with a plain resolv.conf it cannot be expressed.
                if d.starts_with('~') {
                    warn(format!(
                        "routing-only domain {d:?} is not supported, ignored"
                    ));
                } else {
                    file.domains.push(d.to_string());
                }
            }
        }
        "DHCP" => match value.to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" | "1" | "ipv4" => file.dhcp = Some(Dhcp::V4),
            "no" | "false" | "off" | "0" | "" => file.dhcp = Some(Dhcp::No),
            "ipv6" => {
                warn("DHCP=ipv6: DHCPv6 is not supported, ignored".to_string());
                file.dhcp = Some(Dhcp::No);
            }
            _ => warn(format!(
                "DHCP={value:?} is not one of yes, ipv4, ipv6, no; ignored"
            )),
        },
        _ => warn(format!("unsupported key {key}= in [Network], ignored")),
    }
}

/// Parses each space-separated item of `value` into `list`; an empty value
/// resets the list (systemd semantics). Bad items are warned about and skipped.
fn push_list<T>(
    list: &mut Vec<T>,
    value: &str,
    parse_one: fn(&str) -> Result<T, String>,
    warn: &mut dyn FnMut(String),
) {
    if value.is_empty() {
        list.clear();
    }
    for item in value.split_whitespace() {
        match parse_one(item) {
            Ok(v) => list.push(v),
            Err(e) => warn(format!("{e}, ignored")),
        }
    }
}

fn parse_ip(text: &str) -> Result<IpAddr, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not an IP address"))
}

/// Parses `52:54:00:12:34:56` (or with `-` separators).
pub fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let bad = || format!("{text:?} is not a MAC address");
    let mut mac = [0u8; 6];
    let mut parts = text.split([':', '-']);
    for byte in mac.iter_mut() {
        let part = parts.next().ok_or_else(bad)?;
        if part.len() != 2 {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok(mac)
}

/// Shell-style glob: `*`, `?` and `[abc]`/`[a-z]`/`[!a]` classes.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_at(&p, &n)
}

/// What the pattern element at `at` does with one character.
enum Step {
    /// `*`.
    Star,
    /// It matches; the next element is at this index.
    Match(usize),
    NoMatch,
}

fn step(p: &[char], at: usize, c: char) -> Step {
    let Some(&first) = p.get(at) else {
        return Step::NoMatch;
    };
    let single = |ok: bool, next: usize| if ok { Step::Match(next) } else { Step::NoMatch };
    match first {
        '*' => Step::Star,
        '?' => Step::Match(at + 1),
        '[' => {
            let rest = p.get(at + 1..).unwrap_or_default();
            match rest.iter().skip(1).position(|&c| c == ']').map(|i| i + 1) {
                Some(close) => {
                    let class = rest.get(..close).unwrap_or_default();
                    single(class_match(class, c), at + 1 + close + 1)
                }
                // No closing bracket: a literal '['.
                None => single(c == '[', at + 1),
            }
        }
        lit => single(c == lit, at + 1),
    }
}

/// Every element but `*` takes one character, so on a mismatch it is
/// enough to let the last `*` take one more: time in the product of the
/// lengths, not exponential in the stars (found by the `network_file`
/// fuzz target: `*a*a*a…b` against a long name did not end).
fn glob_at(p: &[char], n: &[char]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    // After the last `*`: its pattern index, and where its match ends.
    let mut star: Option<(usize, usize)> = None;
    while let Some(&c) = n.get(ni) {
        match step(p, pi, c) {
            Step::Star => {
                pi += 1;
                star = Some((pi, ni));
            }
            Step::Match(next) => {
                pi = next;
                ni += 1;
            }
            Step::NoMatch => match star {
                Some((after, taken)) => {
                    pi = after;
                    ni = taken + 1;
                    star = Some((after, ni));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).unwrap_or_default().iter().all(|&c| c == '*')
}

fn class_match(class: &[char], c: char) -> bool {
    let (negated, class) = match class.split_first() {
        Some(('!' | '^', rest)) => (true, rest),
        _ => (false, class),
    };
    let mut found = false;
    let mut i = 0;
    while let Some(&lo) = class.get(i) {
        if let (Some('-'), Some(&hi)) = (class.get(i + 1), class.get(i + 2)) {
            found |= lo <= c && c <= hi;
            i += 3;
        } else {
            found |= lo == c;
            i += 1;
        }
    }
    found != negated
}

/// Reads every `*.network` file of the search path under `root`: the first
/// directory wins per file name, the result is in file-name order. Files that
/// cannot be read are warnings.
pub fn load(root: &Path) -> (Vec<NetworkFile>, Vec<Warning>) {
    let mut chosen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in SEARCH_DIRS {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".network") && !chosen.contains_key(&name) {
                chosen.insert(name, entry.path());
            }
        }
    }
    let mut files = Vec::new();
    let mut warnings = Vec::new();
    for path in chosen.into_values() {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let (file, w) = parse(&path, &text);
                files.push(file);
                warnings.extend(w);
            }
            Err(e) => warnings.push(Warning {
                path,
                line: 0,
                message: format!("cannot read: {e}; file skipped"),
            }),
        }
    }
    (files, warnings)
}

/// The first file (in name order) that matches the link.
pub fn find<'a>(
    files: &'a [NetworkFile],
    ifname: &str,
    mac: Option<[u8; 6]>,
) -> Option<&'a NetworkFile> {
    files.iter().find(|f| f.matches(ifname, mac))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn p(text: &str) -> (NetworkFile, Vec<Warning>) {
        parse(Path::new("/etc/systemd/network/10-x.network"), text)
    }

    #[test]
    fn static_file() {
        let (f, w) = p(
            "# comment\n[Match]\nName=eth0 en*\nMACAddress=52:54:00:12:34:56\n\n\
             [Network]\nAddress=192.168.1.5/24\nAddress=fd00::5/64\nGateway=192.168.1.1\n\
             DNS=1.1.1.1\nDNS=9.9.9.9 2620:fe::fe\nDHCP=no\nDomains=example.com corp\n",
        );
        assert_eq!(w, vec![]);
        assert_eq!(f.name, "10-x.network");
        assert_eq!(f.match_names, vec!["eth0", "en*"]);
        assert_eq!(f.match_macs, vec![[0x52, 0x54, 0, 0x12, 0x34, 0x56]]);
        assert_eq!(
            f.addresses,
            vec![
                Cidr::parse("192.168.1.5/24").unwrap(),
                Cidr::parse("fd00::5/64").unwrap()
            ]
        );
        assert_eq!(f.gateways, vec![IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1))]);
        assert_eq!(f.dns.len(), 3);
        assert_eq!(f.dhcp, Some(Dhcp::No));
        assert!(!f.wants_dhcp4());
        assert_eq!(f.domains, vec!["example.com", "corp"]);
    }

    #[test]
    fn warnings_name_the_line_and_the_rest_applies() {
        let (f, w) = p(
            "[Match]\nName=eth*\n[Network]\nAddress=10.0.0.300/24\nFoo=bar\n\
             DHCP=maybe\nGateway=nope\nDHCP=ipv6\nAddress=10.0.0.2/33\nAddress=10.0.0.2/8\n\
             garbage line\n[Link]\nMTUBytes=9000\n[Network]\nDNS=10.0.0.1\nDomains=~corp\n",
        );
        let lines: Vec<(usize, &str)> = w.iter().map(|w| (w.line, w.message.as_str())).collect();
        assert_eq!(lines.len(), 9, "{lines:#?}");
        assert_eq!(lines[0].0, 4);
        assert!(lines[0].1.contains("10.0.0.300"));
        assert_eq!(lines[1], (5, "unsupported key Foo= in [Network], ignored"));
        assert_eq!(lines[2].0, 6);
        assert_eq!(lines[3].0, 7);
        assert_eq!(lines[4], (8, "DHCP=ipv6: DHCPv6 is not supported, ignored"));
        assert_eq!(lines[5].0, 9);
        assert_eq!(lines[6].0, 11);
        assert_eq!(lines[7], (12, "unsupported section [Link], ignored"));
        assert_eq!(lines[8].0, 16);
        // MTUBytes= in the unsupported section is not warned about twice.
        assert_eq!(f.addresses, vec![Cidr::parse("10.0.0.2/8").unwrap()]);
        assert_eq!(f.dns, vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))]);
        assert_eq!(f.dhcp, Some(Dhcp::No));
        assert!(f.domains.is_empty());
        let shown = w[1].to_string();
        assert_eq!(
            shown,
            "/etc/systemd/network/10-x.network:5: unsupported key Foo= in [Network], ignored"
        );
    }

    #[test]
    fn dhcp_values_and_default() {
        for (v, want) in [
            ("yes", Dhcp::V4),
            ("ipv4", Dhcp::V4),
            ("true", Dhcp::V4),
            ("no", Dhcp::No),
        ] {
            let (f, w) = p(&format!("[Match]\nName=e*\n[Network]\nDHCP={v}\n"));
            assert!(w.is_empty());
            assert_eq!(f.dhcp, Some(want), "{v}");
        }
        let (f, _) = p("[Match]\nName=e*\n[Network]\nAddress=10.1.1.1/24\n");
        assert_eq!(f.dhcp, None);
        assert!(!f.wants_dhcp4());
    }

    #[test]
    fn empty_value_resets_list() {
        let (f, w) = p("[Match]\nName=x\n[Network]\nDNS=1.1.1.1\nDNS=\nDNS=8.8.8.8\n");
        assert!(w.is_empty());
        assert_eq!(f.dns, vec![IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8))]);
    }

    #[test]
    fn address_and_route_sections() {
        let (f, w) = p("[Match]\nName=x\n[Address]\nAddress=10.2.0.2/16\n[Route]\nGateway=10.2.0.1\nMetric=5\n");
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].line, 7);
        assert_eq!(f.addresses, vec![Cidr::parse("10.2.0.2/16").unwrap()]);
        assert_eq!(f.gateways, vec![IpAddr::V4(Ipv4Addr::new(10, 2, 0, 1))]);
    }

    #[test]
    fn missing_match_section_warns_and_matches_all() {
        let (f, w) = p("[Network]\nDHCP=yes\n");
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].line, 0);
        assert!(f.matches("anything", None));
    }

    #[test]
    fn key_outside_section() {
        let (_, w) = p("Name=eth0\n[Match]\nName=eth0\n");
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].line, 1);
    }

    #[test]
    fn matching() {
        let (f, _) = p("[Match]\nName=eth* en[ops]?\n");
        assert!(f.matches("eth0", None));
        assert!(f.matches("enp3", None));
        assert!(!f.matches("enx3", None));
        assert!(!f.matches("wlan0", None));
        let (f, _) = p("[Match]\nName=!eth1 lo\n");
        assert!(f.matches("eth0", None));
        assert!(!f.matches("eth1", None));
        let (f, _) = p("[Match]\nMACAddress=52-54-00-00-00-01\n");
        assert!(f.matches("eth0", Some([0x52, 0x54, 0, 0, 0, 1])));
        assert!(!f.matches("eth0", Some([0x52, 0x54, 0, 0, 0, 2])));
        assert!(!f.matches("eth0", None));
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", ""));
        assert!(glob_match("eth*", "eth"));
        assert!(glob_match("e*h*0", "eth0"));
        assert!(glob_match("eth?", "eth1"));
        assert!(!glob_match("eth?", "eth10"));
        assert!(glob_match("eth[0-3]", "eth2"));
        assert!(!glob_match("eth[!0-3]", "eth2"));
        assert!(glob_match("eth[!0-3]", "eth7"));
        assert!(glob_match("a[b", "a[b"));
        assert!(!glob_match("abc", "abd"));
        assert!(glob_match("*[0-9]", "eth10"));
        assert!(glob_match("e*0*", "eth10"));
        assert!(!glob_match("e*0?", "eth10"));
        // Many stars end at once (they took exponential time).
        let stars = "*a".repeat(30) + "b";
        assert!(!glob_match(&stars, &"a".repeat(200)));
        assert!(glob_match(&stars, &("a".repeat(200) + "b")));
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("aa:bb:cc:dd:ee:ff").unwrap(),
            [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]
        );
        assert!(parse_mac("aa:bb:cc:dd:ee").is_err());
        assert!(parse_mac("aa:bb:cc:dd:ee:ff:00").is_err());
        assert!(parse_mac("aa:bb:cc:dd:ee:fg").is_err());
        assert!(parse_mac("a:bb:cc:dd:ee:ff").is_err());
    }

    #[test]
    fn cidrs() {
        assert_eq!(Cidr::parse("10.0.0.1").unwrap().prefix, 32);
        assert_eq!(Cidr::parse("fd00::1").unwrap().prefix, 128);
        assert!(Cidr::parse("10.0.0.1/").is_err());
        assert!(Cidr::parse("fd00::1/129").is_err());
        assert_eq!(Cidr::parse("fd00::1/64").unwrap().to_string(), "fd00::1/64");
    }

    #[test]
    fn load_search_path_first_dir_wins_name_order() {
        let root = tempfile::tempdir().unwrap();
        let w = |dir: &str, name: &str, text: &str| {
            let d = root.path().join(dir);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(name), text).unwrap();
        };
        w(
            "usr/lib/systemd/network",
            "50-a.network",
            "[Match]\nName=lib\n",
        );
        w("etc/systemd/network", "50-a.network", "[Match]\nName=etc\n");
        w(
            "run/systemd/network",
            "20-b.network",
            "[Match]\nName=eth*\n[Network]\nBogus=1\n",
        );
        w(
            "usr/lib/systemd/network",
            "99-c.network",
            "[Match]\nName=*\n[Network]\nDHCP=yes\n",
        );
        w("etc/systemd/network", "README", "not a network file");
        let (files, warnings) = load(root.path());
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec!["20-b.network", "50-a.network", "99-c.network"]);
        assert_eq!(files[1].match_names, vec!["etc"]);
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].line, 4);
        assert_eq!(find(&files, "eth0", None).unwrap().name, "20-b.network");
        assert_eq!(find(&files, "etc", None).unwrap().name, "50-a.network");
        assert_eq!(find(&files, "lib", None).unwrap().name, "99-c.network");
        assert!(find(&files[..2], "wlan0", None).is_none());
    }
}
