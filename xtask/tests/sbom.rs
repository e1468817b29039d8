//! The SBOM of the qemu-x86_64 image, made from the board's real pinned
//! inputs (the cache `build-image` fills; fetched if missing) and the guest
//! programs' crates: it lists the Debian packages and crates with their
//! versions and checksums, comes out byte-identical twice, and PyPI's
//! spdx-tools (`pyspdxtools`) finds it valid SPDX 2.3.

use std::collections::BTreeMap;
use std::process::Command;

use xtask::board::Board;
use xtask::inputs::{resolve, InputOptions};
use xtask::{guest, host_setup, paths, sbom, testing};

#[test]
fn the_qemu_images_sbom_lists_packages_and_crates_and_is_valid_spdx() {
    let board = Board::load(&paths::boards_dir(), "qemu-x86_64").unwrap();
    let inputs = resolve(&board, &InputOptions::default()).unwrap();
    let guest_packages = guest::packages();
    let crates = sbom::guest_crates(&guest_packages).unwrap();
    let id = sbom::Identity {
        os_name: &board.os_name,
        board: &board.name,
        version: "0.1.0",
        build_id: "0123456789ab",
        source_date_epoch: 1_700_000_000,
    };
    let dir = tempfile::tempdir().unwrap();
    let (size, sum) = sbom::write(dir.path(), &inputs, &crates, &id).unwrap();
    let path = dir.path().join(sbom::FILE);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, size);
    assert_eq!(xtask::util::sha256_bytes(&bytes), sum);
    assert_eq!(
        sbom::document(&inputs, &crates, &id).unwrap(),
        bytes,
        "a second document of the same inputs differs"
    );

    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    assert_eq!(doc["creationInfo"]["created"], "2023-11-14T22:13:20Z");
    let packages = doc["packages"].as_array().unwrap();
    let by_name: BTreeMap<&str, &serde_json::Value> = packages
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p))
        .collect();
    // Every pin once, every crate once, and the image.
    assert_eq!(
        packages.len(),
        1 + inputs.packages.len() + crates.len(),
        "{by_name:#?}"
    );
    for pin in &inputs.packages {
        let p = by_name
            .get(pin.package.as_str())
            .unwrap_or_else(|| panic!("{} is not in the SBOM", pin.package));
        assert_eq!(p["versionInfo"], pin.version.as_str(), "{}", pin.package);
        assert_eq!(p["checksums"][0]["algorithm"], "SHA256");
        assert_eq!(p["checksums"][0]["checksumValue"], pin.sha256.as_str());
    }
    for (name, license) in [
        ("docker.io", "Apache-2.0"),
        ("etcd-server", "Apache-2.0"),
        ("zlib1g", "Zlib"),
    ] {
        let p = by_name[name];
        let declared = p["licenseDeclared"].as_str().unwrap();
        assert!(declared.contains(license), "{name}: {declared}");
        let purl = p["externalRefs"][0]["referenceLocator"].as_str().unwrap();
        assert!(
            purl.starts_with(&format!("pkg:deb/debian/{name}@")) && purl.ends_with("?arch=amd64"),
            "{purl}"
        );
    }
    // busybox-static's copyright file is free-form text.
    assert_eq!(by_name["busybox-static"]["licenseDeclared"], "NOASSERTION");

    for name in guest_packages.iter().copied() {
        let p = by_name
            .get(name)
            .unwrap_or_else(|| panic!("guest crate {name} is not in the SBOM"));
        assert_eq!(p["versionInfo"], env!("CARGO_PKG_VERSION"), "{name}");
        assert_eq!(p["licenseDeclared"], "Apache-2.0", "{name}");
    }
    // A registry crate the guest programs use, with Cargo.lock's checksum
    // and a purl. Crates only the builder compiles (the squashfs writer,
    // which `cargo metadata`'s workspace-wide features would add)
    // and proc macros (they run in the compiler) are not listed.
    let serde = by_name["serde"];
    assert_eq!(
        serde["checksums"][0]["checksumValue"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    assert!(serde["externalRefs"][0]["referenceLocator"]
        .as_str()
        .unwrap()
        .starts_with("pkg:cargo/serde@"));
    for host_only in ["xtask", "backhand", "serde_derive"] {
        assert!(!by_name.contains_key(host_only), "{host_only} is listed");
    }

    let pyspdxtools = match host_setup::spdx_tools() {
        Ok(p) => p,
        Err(e) if !testing::in_ci() => {
            eprintln!("SKIPPED the SPDX validation (not in CI): {e:#}");
            return;
        }
        Err(e) => panic!("the SPDX validator cannot be installed: {e:#}"),
    };
    let out = Command::new(&pyspdxtools)
        .arg("--infile")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyspdxtools --infile {} failed ({}):\n{}{}",
        path.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
