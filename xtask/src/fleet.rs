//! A Slipway fleet as its users set one up, for the cluster VM test and
//! `cargo xtask bench cluster`: machines on a private LAN
//! ([`crate::vm::Cluster`]) with static addresses, each an etcd member
//! from `coreos.etcd2`, updating under locksmith's etcd lock; and what the
//! daemons print about that lock, read back from the consoles.

/// Publishes the release in `image` to the feed folder `dir`, channel
/// `test` (what [`user_data`] follows), valid for a day.
pub fn publish(image: &std::path::Path, dir: &std::path::Path) -> anyhow::Result<()> {
    crate::release::publish(&crate::release::PublishOptions {
        image_dir: image.to_path_buf(),
        dir: dir.to_path_buf(),
        channel: "test".to_string(),
        valid_for: 86_400,
        key: None,
    })
    .map(|_| ())
}

/// etcd's timing for TCG guests sharing two host cores: a heartbeat every
/// 500 ms and an election after 5 s of silence. etcd's defaults (100 ms,
/// 1 s) are made for real machines; a guest starved of CPU for a second
/// would start elections over and over.
pub const ETCD_HEARTBEAT_MS: u32 = 500;
pub const ETCD_ELECTION_MS: u32 = 5000;

/// etcdctl on a member, talking to the local member, with bounded waits.
pub const ETCDCTL: &str = "ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:2379 \
                           --dial-timeout=10s --command-timeout=20s";

/// Machine `n`'s address on the LAN (an RFC 1918 range that exists only
/// between the guests: it is never routed to the host).
pub fn lan_ip(n: usize) -> String {
    format!("10.77.0.{n}")
}

/// The `coreos.units` entry that gives machine `n` its LAN address, as a
/// list item indented for `coreos:` → `units:`.
pub fn lan_network_unit(n: usize) -> String {
    format!(
        "    - name: 20-lan.network
      content: |
        [Match]
        Name=eth1
        [Network]
        Address={}/24
",
        lan_ip(n)
    )
}

/// How the members find each other.
#[derive(Debug, Clone)]
pub enum Bootstrap {
    /// `initial-cluster` lists every member (`machines` of them).
    Static { machines: usize },
    /// etcd's v2 discovery protocol at this URL
    /// (`http://…/v2/keys/_etcd/registry/<token>`).
    Discovery(String),
}

/// Machine `n`'s user-data in the seeds' style: an etcd member of a static
/// cluster of `machines` on the LAN (`$private_ipv4` is its `.network`
/// unit's address), updates from `feed` (channel `test`, checked every
/// minute) under locksmith's etcd lock inside a window from `window_start`.
pub fn user_data(n: usize, machines: usize, feed: &str, window_start: &str) -> String {
    user_data_with(n, &Bootstrap::Static { machines }, feed, window_start)
}

/// [`user_data`] with the bootstrap given.
pub fn user_data_with(n: usize, bootstrap: &Bootstrap, feed: &str, window_start: &str) -> String {
    let cluster = match bootstrap {
        Bootstrap::Static { machines } => {
            let initial: Vec<String> = (1..=*machines)
                .map(|i| format!("node{i}=http://{}:2380", lan_ip(i)))
                .collect();
            format!(
                "    initial-cluster: {}\n    initial-cluster-state: new\n",
                initial.join(",")
            )
        }
        Bootstrap::Discovery(url) => format!("    discovery: {url}\n"),
    };
    format!(
        "#cloud-config
hostname: node{n}
write_files:
  # After coreos.update's update.conf (deferred): check every minute.
  - path: /etc/slipway/update.conf
    append: true
    defer: true
    content: |
      INTERVAL=1m
      JITTER=0s
coreos:
  etcd2:
    name: node{n}
    initial-advertise-peer-urls: http://$private_ipv4:2380
    listen-peer-urls: http://$private_ipv4:2380
    listen-client-urls: http://$private_ipv4:2379,http://127.0.0.1:2379
    advertise-client-urls: http://$private_ipv4:2379
{cluster}    initial-cluster-token: slipway-vm-fleet
    heartbeat-interval: {ETCD_HEARTBEAT_MS}
    election-timeout: {ETCD_ELECTION_MS}
  update:
    reboot_strategy: etcd-lock
    server: {feed}
    group: test
  locksmith:
    window_start: \"{window_start}\"
    window_length: 12h
  units:
{}    - name: etcd2.service
      command: start
",
        lan_network_unit(n)
    )
}

/// [`user_data`] for a swarm: the same etcd cluster and updates, plus
/// Docker told that the host's registry (`registry_host`, plain HTTP) is
/// insecure, and `coreos.swarm` making every machine a manager (three
/// managers tolerate one lost) labelled `machine=<n>`.
pub fn swarm_user_data(
    n: usize,
    machines: usize,
    feed: &str,
    window_start: &str,
    registry_host: &str,
) -> String {
    let base = user_data(n, machines, feed, window_start);
    let daemon_json = crate::bench_containers::daemon_json(registry_host);
    let with_docker = base.replacen(
        "write_files:\n",
        &format!(
            "write_files:\n  - path: /etc/docker/daemon.json\n    content: |\n      {daemon_json}"
        ),
        1,
    );
    with_docker.replacen(
        "coreos:\n",
        &format!("coreos:\n  swarm:\n    role: manager\n    labels:\n      machine: \"{n}\"\n"),
        1,
    )
}

/// A real etcd on the host's loopback with the v2 API on (etcd 3.4 serves
/// v2 only with `--enable-v2`): the discovery service of etcd's v2
/// discovery protocol, as discovery.etcd.io was for Container Linux. The
/// guests reach it at 10.0.2.2. Stopped on drop.
pub struct HostEtcd {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for HostEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// etcdctl speaking the v2 API to `endpoint`, without the caller's
/// `ETCDCTL*` variables.
fn etcdctl_v2(endpoint: &str, args: &[&str]) -> anyhow::Result<String> {
    use anyhow::Context;
    let mut cmd = std::process::Command::new("etcdctl");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ETCDCTL") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .env("ETCDCTL_API", "2")
        .args(["--endpoints", endpoint])
        .args(args)
        .output()
        .context("running etcdctl (apt-get install etcd-client)")?;
    if !out.status.success() {
        anyhow::bail!(
            "etcdctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl HostEtcd {
    /// Starts a one-member etcd on free loopback ports and waits until it
    /// answers (its log is in its temporary folder, shown on failure).
    pub fn start() -> anyhow::Result<HostEtcd> {
        use anyhow::Context;
        let dir = tempfile::tempdir()?;
        let (port, peer) = (free_port()?, free_port()?);
        let client = format!("http://127.0.0.1:{port}");
        let peer = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log"))?;
        let mut cmd = std::process::Command::new("etcd");
        // etcd reads every flag from ETCD_* too: none of the caller's.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCD") {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .args(["--name", "discovery", "--enable-v2"])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("discovery={peer}")])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting etcd (apt-get install etcd-server)")?;
        let mut etcd = HostEtcd { child, port, dir };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while etcdctl_v2(&client, &["ls", "/"]).is_err() {
            if std::time::Instant::now() > deadline || etcd.child.try_wait()?.is_some() {
                let log =
                    std::fs::read_to_string(etcd.dir.path().join("etcd.log")).unwrap_or_default();
                anyhow::bail!("the host's etcd did not come up; its log:\n{log}");
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        Ok(etcd)
    }

    /// Its client URL on loopback.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A new discovery token for a cluster of `size` members (the
    /// protocol's `_config/size` key); the URL the guests use.
    pub fn new_discovery(&self, token: &str, size: usize) -> anyhow::Result<String> {
        let key = format!("/_etcd/registry/{token}/_config/size");
        etcdctl_v2(&self.endpoint(), &["set", &key, &size.to_string()])?;
        Ok(format!(
            "http://10.0.2.2:{}/v2/keys/_etcd/registry/{token}",
            self.port
        ))
    }

    /// The members registered under `token` (`_config` is hidden in v2).
    pub fn registered(&self, token: &str) -> anyhow::Result<Vec<String>> {
        let out = etcdctl_v2(
            &self.endpoint(),
            &["ls", &format!("/_etcd/registry/{token}")],
        )?;
        Ok(out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect())
    }
}

/// `HH:MM` UTC an hour ago: a daily window of 12 h from then is open now.
pub fn window_start_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let minute_of_day = ((now / 60) % 1440 + 1440 - 60) % 1440;
    format!("{:02}:{:02}", minute_of_day / 60, minute_of_day % 60)
}

/// PID 1's ready line for `version` booted from `slot`.
pub fn ready_line(version: &str, slot: char) -> String {
    format!("slipway: ready version={version} slot={slot} ")
}

/// The UNIX time after `marker` in a console line (`… at 1765000000 …`).
fn time_after(line: &str, marker: &str) -> Option<u64> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let at = rest.split(" at ").nth(1)?;
    at.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// One machine's reboot-lock holds as (taken, released) UNIX times, from
/// its daemon's console lines (`reboot lock taken by ID at T …`,
/// `reboot lock released by ID at T …`).
pub fn lock_holds(lines: &[String]) -> Vec<(u64, Option<u64>)> {
    let mut holds: Vec<(u64, Option<u64>)> = Vec::new();
    for line in lines {
        if let Some(t) = time_after(line, "reboot lock taken by") {
            holds.push((t, None));
        } else if let Some(t) = time_after(line, "reboot lock released by") {
            if let Some(last) = holds.last_mut() {
                last.1 = Some(t);
            }
        }
    }
    holds
}

/// Lines of `lines` containing `needle`.
pub fn count(lines: &[String], needle: &str) -> usize {
    lines.iter().filter(|l| l.contains(needle)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_are_read_from_the_daemons_lines() {
        let lines: Vec<String> = [
            "slipway: update-engine: 2 installed; waiting for the reboot lock: busy",
            "/ # [6nslipway: update-engine: reboot lock taken by ab at 100 (etcd lock k at http://x:2379): rebooting into 2",
            "slipway: ready version=2 slot=b boot_ms=1",
            "slipway: update-engine: reboot lock released by ab at 130 after 30 s (etcd lock k at http://x:2379, running 2)",
            "slipway: update-engine: reboot lock taken by ab at 200 (…): rebooting into 3",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(lock_holds(&lines), vec![(100, Some(130)), (200, None)]);
        assert_eq!(count(&lines, &ready_line("2", 'b')), 1);
    }

    #[test]
    fn swarm_user_data_is_valid_cloud_config() {
        let text = swarm_user_data(2, 3, "http://10.0.2.2:8000", "17:00", "10.0.2.2:5000");
        let report = cloud_config::validate(text.as_bytes());
        assert!(!report.has_errors(), "{}", report.render_text("swarm"));
        assert!(text.contains("  swarm:\n    role: manager\n"), "{text}");
        assert!(text.contains("insecure-registries"), "{text}");
    }

    #[test]
    fn user_data_is_valid_cloud_config() {
        let text = user_data(2, 3, "http://10.0.2.2:8000", "17:00");
        let report = cloud_config::validate(text.as_bytes());
        assert!(!report.has_errors(), "{}", report.render_text("fleet"));
        assert!(text.contains("node3=http://10.77.0.3:2380"));
        let url = "http://10.0.2.2:2379/v2/keys/_etcd/registry/t1";
        let text = user_data_with(1, &Bootstrap::Discovery(url.into()), "http://x", "17:00");
        let report = cloud_config::validate(text.as_bytes());
        assert!(!report.has_errors(), "{}", report.render_text("fleet"));
        assert!(text.contains(&format!("    discovery: {url}\n")), "{text}");
        assert!(!text.contains("initial-cluster:"), "{text}");
    }
}
