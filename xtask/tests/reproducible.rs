//! Two builds with the same inputs and SOURCE_DATE_EPOCH give a
//! byte-identical disk.raw. Rebuilds the image `cargo xtask test` built,
//! with the same settings, into a temporary folder and compares.

use std::io::Read;

use xtask::build::{build_image, BuildOptions};
use xtask::testing::{in_ci, IMAGE_ENV};

#[test]
fn rebuild_gives_a_byte_identical_disk() {
    let Some(dir) = std::env::var_os(IMAGE_ENV).map(std::path::PathBuf::from) else {
        assert!(
            !in_ci(),
            "{IMAGE_ENV} must be set in CI (run `cargo xtask test`)"
        );
        eprintln!("rebuild_gives_a_byte_identical_disk: SKIPPED: {IMAGE_ENV} not set");
        return;
    };
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut opts = BuildOptions::new(m["board"].as_str().unwrap()).unwrap();
    opts.version = m["version"].as_str().unwrap().to_string();
    opts.source_date_epoch = m["source_date_epoch"].as_u64().unwrap();
    opts.out_dir = Some(out.path().join("image"));
    opts.qcow2 = false;
    let report = build_image(&opts).unwrap();
    assert_eq!(report.manifest.build_id, m["build_id"].as_str().unwrap());

    let a = dir.join("disk.raw");
    let b = report.out_dir.join("disk.raw");
    let (mut fa, mut fb) = (
        std::fs::File::open(&a).unwrap(),
        std::fs::File::open(&b).unwrap(),
    );
    assert_eq!(fa.metadata().unwrap().len(), fb.metadata().unwrap().len());
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut offset = 0u64;
    loop {
        let n = fa.read(&mut ba).unwrap();
        fb.read_exact(&mut bb[..n]).unwrap();
        if n == 0 {
            break;
        }
        if ba[..n] != bb[..n] {
            let i = (0..n).find(|&i| ba[i] != bb[i]).unwrap();
            panic!("disk.raw differs at byte {}", offset + i as u64);
        }
        offset += n as u64;
    }
}
