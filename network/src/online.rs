//! `slipway-networkd wait-online`: what `network-online.target` waits for.
//!
//! The network counts as online once one link other than loopback has an
//! address: a DHCP lease (`bound`, `renewing`, `rebinding`) or the static
//! addresses of its `.network` file (`configured`). That is the daemon's
//! own view, read from the state files it writes under
//! `/run/slipway/network/` (see [`crate::state`]), so the waiting side needs
//! no netlink and agrees with what `slipctl`/`cat` show.
//!
//! One link is enough, as systemd-networkd-wait-online's `--any`: a cluster
//! machine with a static private link and a DHCP uplink is online for its
//! peers as soon as either is up, and cloud-config's network sources then
//! fail or succeed on their own time limits.

use std::path::Path;
use std::time::{Duration, Instant};

/// A link the state files show with an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineLink {
    pub ifname: String,
    pub addresses: Vec<String>,
}

/// The states in which a link's addresses are in use.
const USABLE: [&str; 4] = ["configured", "bound", "renewing", "rebinding"];

/// Links with an address, sorted by name. A state file that cannot be read
/// or parsed (being replaced right now, or not ours) is skipped: the next
/// poll sees it.
pub fn online_links(state_dir: &Path) -> Vec<OnlineLink> {
    let Ok(entries) = std::fs::read_dir(state_dir) else {
        return Vec::new();
    };
    let mut links: Vec<OnlineLink> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|bytes| link_from_json(&bytes))
        .collect();
    links.sort_by(|a, b| a.ifname.cmp(&b.ifname));
    links
}

/// One state file's link, if it is online.
fn link_from_json(bytes: &[u8]) -> Option<OnlineLink> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let ifname = doc.get("ifname")?.as_str()?.to_string();
    let state = doc.get("state")?.as_str()?;
    let addresses: Vec<String> = doc
        .get("addresses")?
        .as_array()?
        .iter()
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect();
    (ifname != "lo" && USABLE.contains(&state) && !addresses.is_empty())
        .then_some(OnlineLink { ifname, addresses })
}

/// Polls [`online_links`] every `interval` until one shows up or `timeout`
/// has passed; `None` on time-out.
pub fn wait_online(
    state_dir: &Path,
    timeout: Duration,
    interval: Duration,
) -> Option<Vec<OnlineLink>> {
    let start = Instant::now();
    loop {
        let links = online_links(state_dir);
        if !links.is_empty() {
            return Some(links);
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return None;
        }
        std::thread::sleep(interval.min(timeout.saturating_sub(elapsed)));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::state::LinkState;
    use std::time::SystemTime;

    fn write(dir: &Path, s: &LinkState) {
        let text = s.to_json(SystemTime::now()).to_string();
        std::fs::write(dir.join(format!("{}.json", s.ifname)), text).unwrap();
    }

    fn link(name: &str, state: &str, addresses: &[&str]) -> LinkState {
        LinkState {
            ifname: name.into(),
            state: state.into(),
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            ..LinkState::default()
        }
    }

    #[test]
    fn a_lease_or_a_static_address_is_online_and_nothing_else_is() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &link("lo", "configured", &["127.0.0.1/8"]));
        write(dir.path(), &link("eth0", "selecting", &[]));
        write(dir.path(), &link("eth2", "failed", &["10.9.0.1/24"]));
        std::fs::write(dir.path().join("junk.json"), b"{not json").unwrap();
        assert!(online_links(dir.path()).is_empty());

        write(
            dir.path(),
            &link("eth1", "configured", &["192.168.50.11/24"]),
        );
        write(dir.path(), &link("eth0", "bound", &["10.0.2.15/24"]));
        let names: Vec<String> = online_links(dir.path())
            .into_iter()
            .map(|l| l.ifname)
            .collect();
        assert_eq!(names, ["eth0", "eth1"]);
    }

    #[test]
    fn waiting_ends_when_a_link_comes_up_or_at_the_time_limit() {
        let dir = tempfile::tempdir().unwrap();
        let start = Instant::now();
        assert_eq!(
            wait_online(
                dir.path(),
                Duration::from_millis(300),
                Duration::from_millis(50)
            ),
            None
        );
        assert!(start.elapsed() >= Duration::from_millis(300));

        let path = dir.path().to_path_buf();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            write(&path, &link("eth0", "bound", &["10.0.2.15/24"]));
        });
        let links = wait_online(
            dir.path(),
            Duration::from_secs(20),
            Duration::from_millis(50),
        )
        .expect("online once the lease is written");
        writer.join().unwrap();
        assert_eq!(links[0].addresses, ["10.0.2.15/24"]);
    }

    #[test]
    fn a_missing_state_folder_is_simply_not_online() {
        assert!(online_links(Path::new("/nonexistent/slipway/network")).is_empty());
    }
}
