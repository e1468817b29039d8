//! The datasource fuzz targets' bodies (`fuzz_bodies/`, shared with
//! `../fuzz/`) over their regression inputs, valid seeds and a few
//! thousand mutations of them (see `boot-contract/tests/fuzz_support/smoke.rs`). The
//! `user_data` body is run by `robustness.rs`.

#[allow(dead_code)] // user_data is robustness.rs's
mod fuzz_bodies;
#[path = "../../boot-contract/tests/fuzz_support/smoke.rs"]
mod smoke;

use std::path::Path;

const CRATE: &str = env!("CARGO_MANIFEST_DIR");

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(CRATE)
            .join("tests/datasource-fixtures")
            .join(path),
    )
    .unwrap()
}

fn text(seeds: &[&str]) -> Vec<Vec<u8>> {
    seeds.iter().map(|s| s.as_bytes().to_vec()).collect()
}

#[test]
fn nocloud_meta() {
    let mut seeds = vec![
        fixture("nocloud-map/meta-data"),
        fixture("nocloud-list/meta-data"),
    ];
    seeds.extend(text(&[
        "instance-id: 'i-0123'\nlocal-hostname: node1\npublic-ipv4: 203.0.113.5\n\
         local-ipv4: 10.0.0.5\npublic-keys: \"ssh-ed25519 AAAA one\\nssh-ed25519 BBBB two\"\n",
        "{\"instance-id\": \"x\", \"public-keys\": {\"a\": {\"openssh-key\": \"k\"}}}",
        "",
    ]));
    smoke::smoke(
        CRATE,
        "nocloud_meta",
        &seeds,
        fuzz_bodies::nocloud_meta,
        3000,
    );
}

#[test]
fn configdrive_meta() {
    let mut seeds = vec![fixture("configdrive/openstack/latest/meta_data.json")];
    seeds.extend(text(&[
        "{\"uuid\": 42, \"hostname\": null, \"public_keys\": {\"a\": \" k1 \", \"b\": \"k2\"}}",
        "{}",
    ]));
    smoke::smoke(
        CRATE,
        "configdrive_meta",
        &seeds,
        fuzz_bodies::configdrive_meta,
        3000,
    );
}

#[test]
fn ec2_meta() {
    let seeds = text(&[
        "0=my-key\n1=other\n",
        " 12=a\r\n\n3\nx=4\n",
        "i-0123456789abcdef0\n",
    ]);
    smoke::smoke(CRATE, "ec2_meta", &seeds, fuzz_bodies::ec2_meta, 3000);
}

#[test]
fn fs_label() {
    // A FAT32 boot sector labelled `cidata` and an ISO descriptor
    // labelled `config-2` (the odd first byte places it at sector 16).
    let mut fat = vec![0u8; 512];
    fat[0] = 0xEB;
    fat[11..13].copy_from_slice(&512u16.to_le_bytes());
    fat[13] = 8;
    fat[16] = 2;
    fat[0x42] = 0x29;
    fat[0x47..0x52].copy_from_slice(b"cidata     ");
    fat[510..512].copy_from_slice(&[0x55, 0xAA]);
    let mut iso = vec![1u8, 1];
    iso.extend_from_slice(b"CD001\x01\x00");
    iso.resize(41, b' ');
    iso.extend_from_slice(b"config-2");
    iso.resize(1 + 72, b' ');
    smoke::smoke(CRATE, "fs_label", &[fat, iso], fuzz_bodies::fs_label, 3000);
}

#[test]
fn cmdline_url() {
    let seeds = text(&[
        "quiet cloud-config-url=http://10.0.2.2:8000/user-data console=ttyS0",
        "ds=nocloud;s=http://10.0.2.2:8000/seed/ ro",
        "ds=nocloud-net;seedfrom=http://h ds=ec2 cloud-config-url=",
    ]);
    smoke::smoke(CRATE, "cmdline_url", &seeds, fuzz_bodies::cmdline_url, 3000);
}
