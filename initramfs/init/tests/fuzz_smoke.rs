//! The init's fuzz targets' bodies (`fuzz_bodies/`, shared with
//! `../fuzz/`) over their regression inputs, valid seeds and a few
//! thousand mutations of them (see `boot-contract/tests/fuzz_support/smoke.rs`).

mod fuzz_bodies;
#[path = "../../../boot-contract/tests/fuzz_support/smoke.rs"]
mod smoke;

use fuzz_bodies::gpt_disk::{entry, gpt_input};
use slipway_init::gpt_grow::VAR_TYPE;
use uuid::Uuid;

const CRATE: &str = env!("CARGO_MANIFEST_DIR");

fn testdata(name: &str) -> Vec<u8> {
    std::fs::read(format!("{CRATE}/src/units/testdata/debian/{name}")).unwrap()
}

#[test]
fn unit_file() {
    let mut seeds = vec![
        [&[0u8][..], &testdata("docker.service")].concat(),
        [&[1u8][..], &testdata("docker.socket")].concat(),
        [&[0u8][..], &testdata("containerd.service")].concat(),
    ];
    seeds.push(
        b"\x03[Unit]\nDescription=%n on %H\nAfter=network.target\n\n[Service]\n\
          Type=oneshot\nExecStart=/bin/echo %i \\\n  \"two words\" $HOME\n\
          Environment=A=1 \"B=x y\"\nRestart=no\n[Install]\nWantedBy=multi-user.target\n\
          \x00[Service]\nEnvironment=\nExecStart=\nExecStart=-/bin/true\nTimeoutStopSec=infinity\n"
            .to_vec(),
    );
    seeds.push(b"\x02[Unit]\nWants=a.service b.service\nConditionPathExists=|!/x\n".to_vec());
    smoke::smoke(CRATE, "unit_file", &seeds, fuzz_bodies::unit_file, 1500);
}

#[test]
fn env_file() {
    let seeds: Vec<Vec<u8>> = [
        "A=1\n# comment\n; also\n export_B = 'single $quoted'\nC=\"double \\\"q\\\" \\$x\"\n",
        "D=one\\\n  two\nE=\"multi\nline\"\nF=  spaced   \nbad-name=1\n1X=2\n",
        "G='a\\b' H\nI=x\\ y\\\\\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    smoke::smoke(CRATE, "env_file", &seeds, fuzz_bodies::env_file, 5000);
}

#[test]
fn gpt_grow() {
    let esp = Uuid::from_u128(0xc12a7328_f81f_11d2_ba4b_00a0c93ec93b).to_bytes_le();
    let var = VAR_TYPE.to_bytes_le();
    let two = [entry(esp, 1, 2048, 4095), entry(var, 2, 4096, 6143)];
    let seeds = vec![
        // Grows by 2 MiB; then the same with 128 entries.
        gpt_input(8192, 4, &two, 2, true),
        gpt_input(8192, 128, &two, 3, true),
        // The primary lost: repaired from the backup (which must be in
        // the disk's last sector to be found).
        gpt_input(8192, 4, &two, 0, false),
        // var not the last partition; the disk as big as the image.
        gpt_input(
            12288,
            4,
            &[entry(var, 2, 2048, 4095), entry(esp, 3, 4096, 6143)],
            0,
            true,
        ),
    ];
    smoke::smoke(CRATE, "gpt_grow", &seeds, fuzz_bodies::gpt_grow, 1500);
}
