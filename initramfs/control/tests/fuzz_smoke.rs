//! The control protocol's fuzz targets' bodies (`fuzz_bodies/`, shared
//! with `../fuzz/`) over their regression inputs, valid seeds and a few
//! thousand mutations of them (see `boot-contract/tests/fuzz_support/smoke.rs`).

mod fuzz_bodies;
#[path = "../../../boot-contract/tests/fuzz_support/smoke.rs"]
mod smoke;

const CRATE: &str = env!("CARGO_MANIFEST_DIR");

fn seeds(pick: u8, lines: &[&str]) -> Vec<Vec<u8>> {
    lines
        .iter()
        .map(|l| [&[pick][..], l.as_bytes()].concat())
        .collect()
}

#[test]
fn request() {
    let mut all = seeds(
        0,
        &[
            "{\"command\":\"start\",\"unit\":\"sshd.service\"}\n",
            "{\"command\":\"status\"}\n{\"command\":\"enable\",\"unit\":\"a@b.service\",\"now\":true}\n",
            "{\"command\":\"reboot\"}",
        ],
    );
    all.extend(seeds(0x31, &["{\"command\":\"status\",\"unit\":null}\n"]));
    smoke::smoke(CRATE, "request", &all, fuzz_bodies::request, 3000);
}

#[test]
fn response() {
    let mut all = seeds(
        0,
        &[
            "{\"ok\":true,\"message\":\"started sshd.service\"}\n",
            "{\"ok\":false,\"error\":\"no such unit \\\"x\\\"\"}\n{\"ok\":true}\n",
        ],
    );
    all.extend(seeds(
        0x20,
        &["{\"ok\":true,\"message\":null,\"error\":null}\n"],
    ));
    smoke::smoke(CRATE, "response", &all, fuzz_bodies::response, 3000);
}
