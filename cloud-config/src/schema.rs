//! The typed cloud-config. String fields hold the raw scalar text as
//! written (`off` stays "off", `0644` stays "0644"); `line` fields are the
//! 1-based source line of an item, for the applier's error messages.

use std::io::Read;

use base64::Engine;
use serde::Serialize;

/// Everything Slipway understands in a cloud-config.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct CloudConfig {
    pub hostname: Option<String>,
    /// Keys for the default user `core`.
    pub ssh_authorized_keys: Vec<String>,
    pub users: Vec<User>,
    /// cloud-init's top-level `groups`.
    pub groups: Vec<Group>,
    pub write_files: Vec<WriteFile>,
    pub manage_etc_hosts: Option<String>,
    pub runcmd: Vec<Command>,
    pub bootcmd: Vec<Command>,
    pub timezone: Option<String>,
    pub power_state: Option<PowerState>,
    pub ca_certs: Option<CaCerts>,
    pub coreos: Coreos,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct User {
    pub line: usize,
    /// Required; empty when missing (validation reports it).
    pub name: String,
    pub passwd: Option<String>,
    pub ssh_authorized_keys: Vec<String>,
    pub gecos: Option<String>,
    pub homedir: Option<String>,
    pub no_create_home: bool,
    pub primary_group: Option<String>,
    /// From a list or a comma-separated string.
    pub groups: Vec<String>,
    pub no_user_group: bool,
    pub system: bool,
    pub no_log_init: bool,
    pub shell: Option<String>,
    /// cloud-init: sudoers rules (a string or a list of them).
    pub sudo: Vec<String>,
    /// cloud-init: None means the default (locked unless `passwd` is set).
    pub lock_passwd: Option<bool>,
    pub uid: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Group {
    pub line: usize,
    pub name: String,
    pub members: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct WriteFile {
    pub line: usize,
    pub path: String,
    /// As written; decode with [`WriteFile::decoded_content`].
    pub content: String,
    /// `content` was tagged `!!binary`: it is base64, decoded before the
    /// `encoding` applies (as coreos-cloudinit's YAML reader does).
    pub binary: bool,
    pub owner: Option<String>,
    /// Raw text, e.g. "0644"; parse with [`WriteFile::mode`].
    pub permissions: Option<String>,
    pub encoding: Option<String>,
    pub append: bool,
    pub defer: bool,
}

/// The decodings `write_files[].encoding` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Plain,
    Base64,
    Gzip,
    GzipBase64,
}

/// The spellings accepted for `encoding`, in the order messages list them.
pub const ENCODINGS: [&str; 8] = [
    "b64",
    "base64",
    "gz",
    "gzip",
    "gz+b64",
    "gz+base64",
    "gzip+b64",
    "gzip+base64",
];

impl Encoding {
    pub fn parse(s: &str) -> Option<Encoding> {
        match s {
            "" => Some(Encoding::Plain),
            "b64" | "base64" => Some(Encoding::Base64),
            "gz" | "gzip" => Some(Encoding::Gzip),
            "gz+b64" | "gz+base64" | "gzip+b64" | "gzip+base64" => Some(Encoding::GzipBase64),
            _ => None,
        }
    }
}

/// Decoded files larger than this are refused (gzip bombs).
pub const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;

impl WriteFile {
    /// The file mode from `permissions` (default 0644); None if invalid.
    pub fn mode(&self) -> Option<u32> {
        match &self.permissions {
            None => Some(0o644),
            Some(p) => parse_mode(p),
        }
    }

    /// The bytes to write, after undoing `encoding`.
    pub fn decoded_content(&self) -> Result<Vec<u8>, String> {
        let name = self.encoding.as_deref().unwrap_or("");
        let encoding = Encoding::parse(name).ok_or_else(|| format!("unknown encoding {name:?}"))?;
        let bytes = if self.binary {
            decode_base64(&self.content).map_err(|e| format!("!!binary: {e}"))?
        } else {
            self.content.clone().into_bytes()
        };
        let text = |b: Vec<u8>| {
            String::from_utf8(b).map_err(|_| "!!binary data that is not base64 text".to_string())
        };
        match encoding {
            Encoding::Plain => Ok(bytes),
            Encoding::Base64 => decode_base64(&text(bytes)?),
            Encoding::Gzip => gunzip(&bytes),
            Encoding::GzipBase64 => gunzip(&decode_base64(&text(bytes)?)?),
        }
    }
}

/// `^0?[0-7]{3,4}$`, read as octal.
pub fn parse_mode(s: &str) -> Option<u32> {
    let digits = s.strip_prefix('0').filter(|d| d.len() >= 3).unwrap_or(s);
    let ok = (3..=4).contains(&digits.len()) && digits.bytes().all(|b| (b'0'..=b'7').contains(&b));
    if !ok {
        return None;
    }
    u32::from_str_radix(digits, 8).ok()
}

pub(crate) fn decode_base64(s: &str) -> Result<Vec<u8>, String> {
    // Base64 in YAML is commonly wrapped over several lines.
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| format!("invalid base64: {e}"))
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("invalid gzip data: {e}"))?;
    if out.len() as u64 > MAX_FILE_SIZE {
        return Err(format!("decompresses to more than {MAX_FILE_SIZE} bytes"));
    }
    Ok(out)
}

/// A `runcmd`/`bootcmd` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Command {
    pub line: usize,
    pub run: Run,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Run {
    /// A string: run through `sh -c`.
    Shell(String),
    /// A list: an argv, run directly.
    Argv(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct PowerState {
    pub line: usize,
    /// poweroff, reboot or halt.
    pub mode: Option<String>,
    /// "now", "+MINUTES" or minutes.
    pub delay: Option<String>,
    pub message: Option<String>,
    /// Seconds to wait for cloud-init's work before acting.
    pub timeout: Option<String>,
    /// A shell command (or "true"/"false") that must succeed.
    pub condition: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct CaCerts {
    pub trusted: Vec<String>,
    pub remove_defaults: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Coreos {
    pub units: Vec<Unit>,
    pub update: Option<Update>,
    pub locksmith: Option<Locksmith>,
    pub etcd2: EnvMap,
    pub fleet: EnvMap,
    pub flannel: EnvMap,
    pub oem: Option<Oem>,
    pub swarm: Option<Swarm>,
}

/// Ordered `key → raw value` pairs; keys have `-` turned into `_`.
pub type EnvMap = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Unit {
    pub line: usize,
    pub name: String,
    pub content: Option<String>,
    pub runtime: bool,
    pub enable: bool,
    pub mask: bool,
    pub command: Option<String>,
    pub drop_ins: Vec<DropIn>,
}

/// The `command` values a unit accepts.
pub const UNIT_COMMANDS: [&str; 7] = [
    "start",
    "stop",
    "restart",
    "reload",
    "try-restart",
    "reload-or-restart",
    "reload-or-try-restart",
];

/// Unit name suffixes systemd (and networkd) know.
pub const UNIT_SUFFIXES: [&str; 14] = [
    ".service",
    ".socket",
    ".timer",
    ".target",
    ".path",
    ".mount",
    ".automount",
    ".network",
    ".netdev",
    ".link",
    ".slice",
    ".scope",
    ".swap",
    ".device",
];

impl Unit {
    /// `.network`, `.netdev` and `.link` files configure networkd.
    pub fn is_network(&self) -> bool {
        [".network", ".netdev", ".link"]
            .iter()
            .any(|s| self.name.ends_with(s))
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct DropIn {
    pub line: usize,
    pub name: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Update {
    pub reboot_strategy: Option<String>,
    pub group: Option<String>,
    pub server: Option<String>,
    /// Base URL of a FleetLock server, for `reboot_strategy: fleetlock`.
    pub fleetlock_url: Option<String>,
    /// The FleetLock group; the update engine's default is Zincati's,
    /// `default`.
    pub fleetlock_group: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Locksmith {
    pub endpoint: Option<String>,
    pub group: Option<String>,
    pub etcd_cafile: Option<String>,
    pub etcd_certfile: Option<String>,
    pub etcd_keyfile: Option<String>,
    pub window_start: Option<String>,
    pub window_length: Option<String>,
}

/// `coreos.swarm`: this machine's part in a Docker swarm (see
/// [`crate::swarm`] for the rules and `apply/swarm_conf.rs` for the file
/// the agent reads). Values are as written, after substitution.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Swarm {
    /// The line of `swarm:` itself.
    pub line: usize,
    /// `manager` or `worker`; required.
    pub role: Option<String>,
    /// An address or an interface name. When not written, validation fills
    /// in `$private_ipv4` substituted (so it may stay the literal
    /// `$private_ipv4` when no value is known).
    pub advertise_addr: Option<String>,
    /// `host[:port]` of managers to join (a list or a comma-separated string).
    pub managers: Vec<String>,
    /// http(s) URLs of the etcd where join tokens are published and read.
    pub etcd_endpoints: Vec<String>,
    pub join_token: Option<String>,
    /// Node labels in the order written (a null value is an empty label).
    pub labels: Vec<(String, String)>,
    /// The line of each key as written.
    pub lines: SwarmLines,
}

/// 1-based lines of the `coreos.swarm` keys; 0 for a key not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct SwarmLines {
    pub role: usize,
    pub advertise_addr: usize,
    pub managers: usize,
    pub etcd_endpoints: usize,
    pub join_token: usize,
    pub labels: usize,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Oem {
    pub id: Option<String>,
    pub name: Option<String>,
    pub version_id: Option<String>,
    pub home_url: Option<String>,
    pub bug_report_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0644"), Some(0o644));
        assert_eq!(parse_mode("644"), Some(0o644));
        assert_eq!(parse_mode("4755"), Some(0o4755));
        assert_eq!(parse_mode("04755"), Some(0o4755));
        assert_eq!(parse_mode("0999"), None);
        assert_eq!(parse_mode("64"), None);
        assert_eq!(parse_mode("007555"), None);
        assert_eq!(parse_mode("u+x"), None);
    }

    fn file(content: &str, encoding: Option<&str>) -> WriteFile {
        WriteFile {
            content: content.into(),
            encoding: encoding.map(Into::into),
            ..WriteFile::default()
        }
    }

    #[test]
    fn decodes_content() {
        assert_eq!(
            file("aGk=\n", Some("b64")).decoded_content().unwrap(),
            b"hi"
        );
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"hello").unwrap();
        let gz = base64::engine::general_purpose::STANDARD.encode(e.finish().unwrap());
        let f = file(&gz, Some("gzip+base64"));
        assert_eq!(f.decoded_content().unwrap(), b"hello");
        assert!(file("!!", Some("base64")).decoded_content().is_err());
        assert!(file("aGk=", Some("gz+b64")).decoded_content().is_err());
        assert!(file("x", Some("custom")).decoded_content().is_err());
    }
}
