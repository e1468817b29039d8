//! The per-link state file `/run/slipway/network/<ifname>.json`, for other
//! tools to show: written atomically on every change, removed with the link.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// What the file says about one link.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkState {
    pub ifname: String,
    pub index: u32,
    /// `dhcp4`, `static`, `static+dhcp4` or `unmanaged`.
    pub source: String,
    /// `selecting`, `requesting`, `bound`, `renewing`, `rebinding`,
    /// `configured`, `failed`, `up`.
    pub state: String,
    pub addresses: Vec<String>,
    pub gateway: Option<IpAddr>,
    pub dns: Vec<IpAddr>,
    pub domains: Vec<String>,
    /// The `.network` file applied, if any.
    pub network_file: Option<String>,
    pub dhcp_server: Option<IpAddr>,
    pub lease_seconds: Option<u32>,
    /// Time left on the lease when the file was written.
    pub lease_remaining: Option<Duration>,
}

impl LinkState {
    /// The JSON document; `now` is the wall clock, for `lease_expires_unix`.
    pub fn to_json(&self, now: SystemTime) -> Value {
        let expires = self
            .lease_remaining
            .and_then(|left| now.checked_add(left))
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        json!({
            "ifname": self.ifname,
            "index": self.index,
            "source": self.source,
            "state": self.state,
            "addresses": self.addresses,
            "gateway": self.gateway.map(|g| g.to_string()),
            "dns": self.dns.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            "domains": self.domains,
            "network_file": self.network_file,
            "dhcp_server": self.dhcp_server.map(|s| s.to_string()),
            "lease_seconds": self.lease_seconds,
            "lease_expires_unix": expires,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn json_shape() {
        let s = LinkState {
            ifname: "eth0".into(),
            index: 2,
            source: "dhcp4".into(),
            state: "bound".into(),
            addresses: vec!["10.0.2.15/24".into()],
            gateway: Some("10.0.2.2".parse().unwrap()),
            dns: vec!["10.0.2.3".parse().unwrap()],
            lease_seconds: Some(86400),
            lease_remaining: Some(Duration::from_secs(100)),
            ..LinkState::default()
        };
        let v = s.to_json(UNIX_EPOCH + Duration::from_secs(1000));
        assert_eq!(v["ifname"], "eth0");
        assert_eq!(v["addresses"][0], "10.0.2.15/24");
        assert_eq!(v["gateway"], "10.0.2.2");
        assert_eq!(v["dns"][0], "10.0.2.3");
        assert_eq!(v["lease_expires_unix"], 1100);
        assert_eq!(v["network_file"], Value::Null);
    }
}
