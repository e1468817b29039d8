//! `$public_ipv4` and friends: filled in before parsing, as
//! coreos-cloudinit does, so a config can name the machine's addresses.
//!
//! Where the values come from. coreos-cloudinit (`initialize/env.go`,
//! `NewEnvironment`) took each variable from the datasource's metadata,
//! else from `COREOS_PUBLIC_IPV4`, `COREOS_PRIVATE_IPV4`… in its
//! environment (which `coreos-setup-environment` or an OEM script wrote
//! to `/etc/environment`), each variable on its own: nothing there makes
//! `$public_ipv4` fall back to the private address, so here it does not
//! either. Its `Apply` replaced a variable without a value by an empty
//! string; here it stays as written, and validation warns where that
//! matters (`coreos.etcd2`).
//!
//! Slipway has no `/etc/environment` step, so `$private_ipv4` gets the
//! fallbacks a machine without metadata needs ([`Substitutions::resolve`]):
//! the first IPv4 `Address=` of the user-data's own `.network` units (the
//! static address a cluster member gives itself), else the first IPv4
//! address configured on a non-loopback interface when cloud-config runs
//! (usually none: cloud-config runs before the network).

use std::net::Ipv4Addr;
use std::path::Path;

use crate::schema::Unit;

/// The variables, without `$`.
pub const NAMES: [&str; 4] = ["public_ipv4", "private_ipv4", "public_ipv6", "private_ipv6"];

/// Values for the substitution variables; a variable without a value is
/// left as written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Substitutions {
    pub public_ipv4: Option<String>,
    pub private_ipv4: Option<String>,
    pub public_ipv6: Option<String>,
    pub private_ipv6: Option<String>,
    /// The first IPv4 address configured on a non-loopback interface when
    /// cloud-config runs (only `boot` sets it, on the machine): the last
    /// resort for `$private_ipv4`, see [`Substitutions::resolve`].
    pub interface_ipv4: Option<String>,
}

/// Where `$private_ipv4` came from when the metadata gave none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    /// The first IPv4 `Address=` of this `coreos.units` entry (a
    /// `.network` unit of the user-data).
    NetworkUnit { index: usize, name: String },
    /// [`Substitutions::interface_ipv4`].
    Interface,
}

impl Substitutions {
    /// The value for a variable name (without `$`). Values containing a
    /// line break are ignored: they would move every later line and make
    /// positions in findings wrong (and an address never has one).
    pub fn value(&self, name: &str) -> Option<&str> {
        let v = match name {
            "public_ipv4" => &self.public_ipv4,
            "private_ipv4" => &self.private_ipv4,
            "public_ipv6" => &self.public_ipv6,
            "private_ipv6" => &self.private_ipv6,
            _ => return None,
        };
        v.as_deref().filter(|v| !v.contains(['\n', '\r']))
    }

    /// The values to substitute into `text` (cloud-config before
    /// substitution): these, with `$private_ipv4` filled in from the
    /// fallbacks when the metadata gave none and `text` uses it (or has a
    /// `coreos.swarm` without `advertise_addr`, whose default it is).
    ///
    /// Substitution runs before parsing, yet the `.network` units are only
    /// known after it: `text` is parsed once as it is, only for its units
    /// (the substitution keeps every line where it was, so the unit indices
    /// and positions of the second parse are the same).
    pub fn resolve(&self, text: &str) -> (Substitutions, Option<Fallback>) {
        let mut out = self.clone();
        // `coreos.swarm.advertise_addr` not written means `$private_ipv4`
        // too (the text names it only when that section is there).
        let used = uses(text, "private_ipv4");
        if self.value("private_ipv4").is_some() || !(used || text.contains("swarm")) {
            return (out, None);
        }
        let Some(config) = crate::parse::parse(text).config else {
            return (out, None);
        };
        let swarm_default = config
            .coreos
            .swarm
            .as_ref()
            .is_some_and(|s| s.advertise_addr.is_none());
        if !used && !swarm_default {
            return (out, None);
        }
        let units = config.coreos.units;
        if let Some((index, address)) = network_unit_ipv4(&units) {
            out.private_ipv4 = Some(address.to_string());
            let name = units[index].name.clone();
            return (out, Some(Fallback::NetworkUnit { index, name }));
        }
        match self
            .interface_ipv4
            .as_deref()
            .filter(|v| !v.contains(['\n', '\r']))
        {
            Some(address) => {
                out.private_ipv4 = Some(address.to_string());
                (out, Some(Fallback::Interface))
            }
            None => (out, None),
        }
    }
}

/// The first IPv4 address that a `.network` unit of the user-data gives
/// its link (`[Network] Address=` or `[Address] Address=`, read as
/// slipway-networkd reads them), in the order of `coreos.units`, with the
/// unit's index. Units that write no file (no `content`, or `mask`) do not
/// count, and of two units of one name the later is the file on disk.
/// Loopback and unspecified addresses are no machine's address.
pub fn network_unit_ipv4(units: &[Unit]) -> Option<(usize, Ipv4Addr)> {
    let writes = |u: &Unit| u.name.ends_with(".network") && u.content.is_some() && !u.mask;
    units.iter().enumerate().find_map(|(i, u)| {
        let content = u.content.as_deref().filter(|_| writes(u))?;
        if units[i + 1..]
            .iter()
            .any(|later| later.name == u.name && writes(later))
        {
            return None;
        }
        let (file, _warnings) = slipway_network::config::parse(Path::new(&u.name), content);
        file.addresses.iter().find_map(|cidr| match cidr.addr {
            std::net::IpAddr::V4(v4) if !v4.is_loopback() && !v4.is_unspecified() => Some((i, v4)),
            _ => None,
        })
    })
}

/// The first IPv4 address configured on an interface that is not
/// loopback, as the kernel lists them now: [`Substitutions::interface_ipv4`]
/// on the machine.
pub fn interface_ipv4() -> Option<Ipv4Addr> {
    use nix::net::if_::InterfaceFlags;
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    first_interface_ipv4(addrs.filter_map(|a| {
        let v4 = a.address?.as_sockaddr_in()?.ip();
        Some((a.flags.contains(InterfaceFlags::IFF_LOOPBACK), v4))
    }))
}

/// Of (is the interface loopback, address): the first address a peer could
/// reach, so neither loopback nor link-local (169.254/16, which a link
/// gets when nothing configured it).
fn first_interface_ipv4(addrs: impl Iterator<Item = (bool, Ipv4Addr)>) -> Option<Ipv4Addr> {
    addrs
        .filter(|(loopback, a)| {
            !loopback && !a.is_loopback() && !a.is_link_local() && !a.is_unspecified()
        })
        .map(|(_, a)| a)
        .next()
}

/// One `$name` of a known variable in the text: its byte offsets, and
/// whether a backslash escapes it (the backslash is at `start - 1`).
struct Use {
    start: usize,
    end: usize,
    name: &'static str,
    escaped: bool,
}

/// The known variables in `text`, in order. A name runs over ASCII
/// letters, digits and `_`, so `$public_ipv4x` is no variable.
fn scan(text: &str) -> Vec<Use> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find('$') {
        let start = from + i;
        let after = &text[start + 1..];
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if let Some(name) = NAMES.iter().find(|n| **n == &after[..len]) {
            out.push(Use {
                start,
                end: start + 1 + len,
                name,
                escaped: text[..start].ends_with('\\'),
            });
        }
        from = start + 1 + len;
    }
    out
}

/// Whether `text` uses `$name` (unescaped).
pub fn uses(text: &str, name: &str) -> bool {
    scan(text).iter().any(|u| u.name == name && !u.escaped)
}

/// The 1-based line and column of the first unescaped `$name` in `text`
/// that is not on a comment line (comments get substituted too, but
/// pointing at one would not help).
pub fn first_use(text: &str, name: &str) -> Option<(usize, usize)> {
    scan(text)
        .into_iter()
        .filter(|u| u.name == name && !u.escaped)
        .find_map(|u| {
            let before = &text[..u.start];
            let line_start = before.rfind('\n').map_or(0, |i| i + 1);
            let line = &text[line_start..];
            if line.trim_start().starts_with('#') {
                return None;
            }
            Some((
                before.matches('\n').count() + 1,
                before[line_start..].chars().count() + 1,
            ))
        })
}

/// The variables written in `value` (a value after substitution) that
/// have no value in `subs`: they reached the value as literal text.
pub fn without_value(value: &str, subs: &Substitutions) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for u in scan(value) {
        if subs.value(u.name).is_none() && !names.contains(&u.name) {
            names.push(u.name);
        }
    }
    names
}

/// Replace `$name` for the known names; `\$name` becomes a literal `$name`.
/// Unknown `$names` and variables without a value stay untouched.
pub fn substitute(text: &str, subs: &Substitutions) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for u in scan(text) {
        if u.escaped {
            // Drop the backslash, keep the variable literally.
            out.push_str(&text[copied..u.start - 1]);
            out.push_str(&text[u.start..u.end]);
        } else {
            out.push_str(&text[copied..u.start]);
            out.push_str(subs.value(u.name).unwrap_or(&text[u.start..u.end]));
        }
        copied = u.end;
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs() -> Substitutions {
        Substitutions {
            public_ipv4: Some("203.0.113.7".into()),
            private_ipv4: Some("10.0.0.7".into()),
            public_ipv6: None,
            private_ipv6: Some("fd00::7\n".into()),
            interface_ipv4: None,
        }
    }

    #[test]
    fn replaces_known_names() {
        assert_eq!(
            substitute("a: http://$private_ipv4:2379,$public_ipv4", &subs()),
            "a: http://10.0.0.7:2379,203.0.113.7"
        );
    }

    #[test]
    fn escape_and_unknown_and_missing() {
        assert_eq!(
            substitute(r"\$public_ipv4 $HOME $public_ipv6 $public_ipv4x $", &subs()),
            "$public_ipv4 $HOME $public_ipv6 $public_ipv4x $"
        );
        // A backslash before an unknown name is not an escape of ours.
        assert_eq!(substitute(r"\$HOME", &subs()), r"\$HOME");
    }

    #[test]
    fn value_with_newline_is_ignored() {
        assert_eq!(substitute("$private_ipv6", &subs()), "$private_ipv6");
    }

    #[test]
    fn multibyte_text_is_kept() {
        assert_eq!(substitute("é $private_ipv4 ü", &subs()), "é 10.0.0.7 ü");
    }

    fn network_unit(name: &str, content: &str) -> Unit {
        Unit {
            name: name.into(),
            content: Some(content.into()),
            ..Unit::default()
        }
    }

    #[test]
    fn first_static_ipv4_of_the_network_units() {
        let units = [
            network_unit("00-dhcp.network", "[Match]\nName=eth0\n[Network]\nDHCP=yes\n"),
            Unit {
                name: "etcd2.service".into(),
                command: Some("start".into()),
                ..Unit::default()
            },
            network_unit(
                "10-static.network",
                "[Match]\nName=eth1\n[Network]\nAddress=fd00::2/64\nAddress=127.0.0.2/8\n[Address]\nAddress=10.77.0.2/24\n",
            ),
            network_unit("20-other.network", "[Network]\nAddress=10.99.0.1/24\n"),
        ];
        assert_eq!(
            network_unit_ipv4(&units),
            Some((2, Ipv4Addr::new(10, 77, 0, 2)))
        );
        // A later unit of the same name is the file on disk; a masked one
        // writes none.
        let mut replaced = units.to_vec();
        replaced.push(network_unit("10-static.network", "[Network]\nDHCP=yes\n"));
        assert_eq!(
            network_unit_ipv4(&replaced),
            Some((3, Ipv4Addr::new(10, 99, 0, 1)))
        );
        replaced[3].mask = true;
        assert_eq!(network_unit_ipv4(&replaced), None);
        assert_eq!(network_unit_ipv4(&[]), None);
    }

    const STATIC: &str = "#cloud-config\ncoreos:\n  etcd2:\n    listen-client-urls: http://$private_ipv4:2379\n  units:\n    - name: 10-static.network\n      content: |\n        [Match]\n        Name=eth1\n\n        [Network]\n        Address=10.77.0.2/24\n";

    #[test]
    fn private_ipv4_falls_back_to_the_user_data_then_an_interface() {
        let metadata = Substitutions {
            private_ipv4: Some("10.0.0.7".into()),
            interface_ipv4: Some("192.168.1.9".into()),
            ..Substitutions::default()
        };
        // Metadata wins.
        assert_eq!(metadata.resolve(STATIC), (metadata.clone(), None));
        // Then the user-data's own static address.
        let interface_only = Substitutions {
            interface_ipv4: Some("192.168.1.9".into()),
            ..Substitutions::default()
        };
        let (subs, from) = interface_only.resolve(STATIC);
        assert_eq!(subs.private_ipv4.as_deref(), Some("10.77.0.2"));
        assert_eq!(
            from,
            Some(Fallback::NetworkUnit {
                index: 0,
                name: "10-static.network".into()
            })
        );
        assert!(substitute(STATIC, &subs).contains("http://10.77.0.2:2379"));
        // Then the interface.
        let dhcp = STATIC.replace("Address=10.77.0.2/24", "DHCP=yes");
        let (subs, from) = interface_only.resolve(&dhcp);
        assert_eq!(subs.private_ipv4.as_deref(), Some("192.168.1.9"));
        assert_eq!(from, Some(Fallback::Interface));
        // Then nothing; and $public_ipv4 never falls back to the private one.
        let (subs, from) = Substitutions::default().resolve(&dhcp);
        assert_eq!((subs.private_ipv4, from), (None, None));
        let public = STATIC.replace("$private_ipv4", "$public_ipv4");
        let (subs, from) = Substitutions::default().resolve(&public);
        assert_eq!(
            (subs.public_ipv4, subs.private_ipv4, from),
            (None, None, None)
        );
    }

    #[test]
    fn fallback_only_when_the_variable_is_used() {
        let escaped = STATIC.replace("$private_ipv4", "\\$private_ipv4");
        assert_eq!(
            Substitutions::default().resolve(&escaped),
            (Substitutions::default(), None)
        );
        // Unparseable YAML: no units, no fallback (validation reports it).
        let broken = format!("{STATIC}  - [\n");
        assert_eq!(Substitutions::default().resolve(&broken).1, None);
    }

    #[test]
    fn interface_addresses() {
        let lo = (true, Ipv4Addr::LOCALHOST);
        let link_local = (false, Ipv4Addr::new(169, 254, 3, 4));
        let eth = (false, Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(
            first_interface_ipv4([lo, link_local, eth].into_iter()),
            Some(eth.1)
        );
        assert_eq!(first_interface_ipv4([lo, link_local].into_iter()), None);
        // The real call works wherever the tests run (loopback is skipped).
        assert_ne!(interface_ipv4(), Some(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn uses_positions_and_values_left_out() {
        assert!(uses("a: $private_ipv4", "private_ipv4"));
        assert!(!uses(r"a: \$private_ipv4 $private_ipv4x", "private_ipv4"));
        assert_eq!(
            first_use("a\nbé: x $public_ipv4", "public_ipv4"),
            Some((2, 7))
        );
        assert_eq!(first_use("none", "public_ipv4"), None);
        assert_eq!(
            first_use("  # $public_ipv4\nx: $public_ipv4", "public_ipv4"),
            Some((2, 4))
        );
        let subs = Substitutions {
            public_ipv4: Some("203.0.113.7".into()),
            ..Substitutions::default()
        };
        assert_eq!(
            without_value("$private_ipv4,$public_ipv4,$private_ipv4,$HOME", &subs),
            ["private_ipv4"]
        );
    }
}
