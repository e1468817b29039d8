//! The swarm agent's etcd client against a real etcd on the host's
//! loopback (Debian's etcd-server, as the machines run it): the claim
//! that decides which manager initialises is won exactly once, tokens
//! and addresses are read back by prefix, requests are deleted.

use slipway_swarm::etcd::{key, Etcd};
use xtask::fleet::HostEtcd;
use xtask::testing::in_ci;

#[test]
fn the_agents_etcd_operations_work_against_a_real_etcd() {
    if which("etcd").is_none() {
        assert!(!in_ci(), "etcd is missing (apt-get install etcd-server)");
        eprintln!("SKIPPED (not in CI): no etcd on this machine");
        return;
    }
    let host = HostEtcd::start().unwrap();
    let etcd = Etcd::new(&[host.endpoint()]).unwrap();

    // Two managers race for the claim: one wins, the other sees the winner.
    assert!(etcd.create(&key("init-claim"), "node1").unwrap());
    assert!(!etcd.create(&key("init-claim"), "node2").unwrap());
    assert_eq!(
        etcd.get(&key("init-claim")).unwrap().as_deref(),
        Some("node1")
    );

    etcd.put(&key("managers/node1"), "10.77.0.1:2377").unwrap();
    etcd.put(&key("managers/node2"), "10.77.0.2:2377").unwrap();
    // A key that only shares the first letters is not under the prefix.
    etcd.put(&key("managersx"), "no").unwrap();
    let managers = etcd.get_prefix(&key("managers/")).unwrap();
    assert_eq!(
        managers,
        vec![
            (key("managers/node1"), "10.77.0.1:2377".to_string()),
            (key("managers/node2"), "10.77.0.2:2377".to_string()),
        ]
    );

    etcd.put(&key("requests/abc"), "drain").unwrap();
    etcd.delete(&key("requests/abc")).unwrap();
    assert_eq!(etcd.get(&key("requests/abc")).unwrap(), None);
    assert!(etcd.get_prefix(&key("requests/")).unwrap().is_empty());
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}
