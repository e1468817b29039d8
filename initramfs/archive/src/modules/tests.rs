//! Kernel modules are stood in for by minimal ELF relocatables carrying
//! only a `.modinfo` section, laid out in a fake `lib/modules/<version>`.

use std::io::Write;
use std::path::Path;

use object::write::Object;
use object::{Architecture, BinaryFormat, Endianness, SectionKind};

use super::*;

fn fake_ko(name: &str, depends: &str) -> Vec<u8> {
    fake_ko_aliases(name, depends, &[])
}

fn fake_ko_aliases(name: &str, depends: &str, aliases: &[&str]) -> Vec<u8> {
    let mut elf = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let section = elf.add_section(
        Vec::new(),
        b".modinfo".to_vec(),
        SectionKind::ReadOnlyString,
    );
    // Real sections look like this: strings each NUL-terminated, sometimes
    // with extra NULs between them for alignment.
    let mut modinfo = format!("license=GPL\0\0\0depends={depends}\0retpoline=Y\0name={name}\0");
    for a in aliases {
        modinfo += &format!("alias={a}\0");
    }
    elf.append_section_data(section, modinfo.as_bytes(), 1);
    elf.write().unwrap()
}

/// A kernel directory holding each `(relative path, depends)` as a module,
/// compressed per its suffix, and `builtin` as `modules.builtin`.
fn kernel(dir: &Path, modules: &[(&str, &str)], builtin: &[&str]) -> KernelModules {
    fs::create_dir_all(dir.join("kernel")).unwrap();
    for (path, depends) in modules {
        let file_name = path.rsplit('/').next().unwrap();
        let name = module_name(file_name).unwrap();
        let elf = fake_ko(&name, depends);
        let data = if path.ends_with(".xz") {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(&elf).unwrap();
            e.finish().unwrap()
        } else if path.ends_with(".zst") {
            zstd::encode_all(elf.as_slice(), 3).unwrap()
        } else {
            elf
        };
        let path = dir.join("kernel").join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
    }
    let builtin: String = builtin.iter().map(|b| format!("{b}\n")).collect();
    fs::write(dir.join("modules.builtin"), builtin).unwrap();
    fs::write(dir.join("kernel/README"), "not a module").unwrap();
    KernelModules::open(dir).unwrap()
}

fn names(modules: &[Module]) -> Vec<&str> {
    modules.iter().map(|m| m.name.as_str()).collect()
}

#[test]
fn closure_is_in_load_order_with_ties_broken_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let k = kernel(
        tmp.path(),
        &[
            ("drivers/md/dm-verity.ko", "reed_solomon,dm-mod,dm-bufio"),
            ("drivers/md/dm-mod.ko", ""),
            ("drivers/md/dm-bufio.ko.xz", "dm-mod"),
            ("lib/reed_solomon/reed_solomon.ko.zst", ""),
            ("fs/squashfs/squashfs.ko", ""),
            ("drivers/unwanted.ko", ""),
        ],
        &[],
    );
    let closure = k.closure(&["squashfs", "dm-verity"]).unwrap();
    assert_eq!(
        names(&closure),
        [
            "dm_mod",
            "dm_bufio",
            "reed_solomon",
            "dm_verity",
            "squashfs"
        ]
    );
    let verity = &closure[3];
    assert_eq!(verity.depends, ["reed_solomon", "dm_mod", "dm_bufio"]);
    assert_eq!(
        verity.data,
        fake_ko("dm_verity", "reed_solomon,dm-mod,dm-bufio")
    );

    // The order depends on the modules, not on how they were asked for.
    let again = k.closure(&["dm_verity", "squashfs", "dm_mod"]).unwrap();
    assert_eq!(again, closure);
}

#[test]
fn compressed_modules_are_returned_uncompressed() {
    let tmp = tempfile::tempdir().unwrap();
    let k = kernel(tmp.path(), &[("a.ko.xz", ""), ("b.ko.zst", "a")], &[]);
    let closure = k.closure(&["b"]).unwrap();
    assert_eq!(closure[0].data, fake_ko("a", ""));
    assert_eq!(closure[1].data, fake_ko("b", "a"));
}

#[test]
fn built_in_modules_are_skipped_whether_wanted_or_depended_on() {
    let tmp = tempfile::tempdir().unwrap();
    let k = kernel(
        tmp.path(),
        &[("fs/vfat.ko", "fat"), ("fs/fat.ko", "")],
        &["kernel/fs/ext4/ext4.ko", "kernel/fs/fat.ko"],
    );
    assert!(k.is_builtin("ext4"));
    assert!(k.is_builtin("fat"));
    let closure = k.closure(&["ext4", "vfat"]).unwrap();
    assert_eq!(names(&closure), ["vfat"]);
    assert!(k.closure(&["ext4"]).unwrap().is_empty());
}

#[test]
fn missing_module_names_the_kernel_and_who_needed_it() {
    let tmp = tempfile::tempdir().unwrap();
    let k = kernel(tmp.path(), &[("virtio_blk.ko", "virtio-ring")], &[]);

    let err = k.closure(&["no-such"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "module `no_such` is not in the kernel at {} (neither a .ko file nor built in)",
            tmp.path().display()
        )
    );
    let err = k.closure(&["virtio_blk"]).unwrap_err();
    assert!(
        matches!(
            &err,
            ModulesError::NotInKernel { module, needed_by: Some(by), .. }
                if module == "virtio_ring" && by == "virtio_blk"
        ),
        "{err:?}"
    );
    assert!(err.to_string().ends_with(", needed by `virtio_blk`"));
}

#[test]
fn dependency_cycle_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let k = kernel(
        tmp.path(),
        &[("top.ko", "b"), ("a.ko", "c"), ("b.ko", "a"), ("c.ko", "b")],
        &[],
    );
    let err = k.closure(&["top"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "kernel modules depend on each other in a cycle: a -> c -> b -> a"
    );

    let tmp = tempfile::tempdir().unwrap();
    let k = kernel(tmp.path(), &[("self.ko", "self")], &[]);
    assert!(matches!(
        k.closure(&["self"]).unwrap_err(),
        ModulesError::Cycle { cycle } if cycle == ["self", "self"]
    ));
}

#[test]
fn a_module_without_modinfo_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    kernel(tmp.path(), &[], &[]);
    fs::write(
        tmp.path().join("kernel/bogus.ko"),
        b"\x7fELF but not really",
    )
    .unwrap();
    let k = KernelModules::open(tmp.path()).unwrap();
    let err = k.closure(&["bogus"]).unwrap_err();
    assert!(
        matches!(&err, ModulesError::NotAModule { path, .. } if path.ends_with("kernel/bogus.ko")),
        "{err:?}"
    );
}

#[test]
fn module_names_are_normalised() {
    assert_eq!(
        module_name("kernel/drivers/md/dm-verity.ko"),
        Some("dm_verity".into())
    );
    assert_eq!(module_name("dm-mod.ko.xz"), Some("dm_mod".into()));
    assert_eq!(module_name("x.ko.zst"), Some("x".into()));
    assert_eq!(module_name("modules.order"), None);
    assert_eq!(module_name(".ko"), None);
    assert_eq!(normalize("virtio-pci"), "virtio_pci");
}

#[test]
fn missing_kernel_dir_is_an_io_error_with_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let err = KernelModules::open(&tmp.path().join("6.1.0")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "reading directory {}",
            tmp.path().join("6.1.0/kernel").display()
        )
    );
}

#[test]
fn root_modules_write_full_closures_deepest_last_and_aliases() {
    let tmp = tempfile::tempdir().unwrap();
    let k = kernel(
        tmp.path(),
        &[
            ("net/bridge/br_netfilter.ko", "bridge"),
            ("net/bridge/bridge.ko", "stp,llc"),
            ("net/802/stp.ko", "llc"),
            ("net/llc/llc.ko", ""),
            ("net/netfilter/nft_chain_nat.ko.xz", "nf_tables,nf_nat"),
            ("net/netfilter/nf_tables.ko", "nfnetlink"),
            ("net/netfilter/nfnetlink.ko", ""),
            ("drivers/net/veth.ko", ""),
            ("drivers/unwanted.ko", ""),
        ],
        &["kernel/net/netfilter/nf_nat.ko"],
    );
    // The chain module's aliases, as the real one declares them.
    let ko = tmp.path().join("kernel/net/netfilter/nft_chain_nat.ko.xz");
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
    e.write_all(&fake_ko_aliases(
        "nft_chain_nat",
        "nf_tables,nf_nat",
        &["nft-chain-2-nat", "nft-chain-10-nat"],
    ))
    .unwrap();
    fs::write(&ko, e.finish().unwrap()).unwrap();

    let r = k
        .root_modules(&["br_netfilter", "kernel/net/netfilter"])
        .unwrap();
    let paths: Vec<&str> = r.files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "kernel/net/802/stp.ko",
            "kernel/net/bridge/br_netfilter.ko",
            "kernel/net/bridge/bridge.ko",
            "kernel/net/llc/llc.ko",
            "kernel/net/netfilter/nf_tables.ko",
            "kernel/net/netfilter/nfnetlink.ko",
            // uncompressed on the root, the suffix dropped
            "kernel/net/netfilter/nft_chain_nat.ko",
        ]
    );
    assert!(r.files.iter().all(|(_, d)| d.starts_with(b"\x7fELF")));
    assert_eq!(
        r.modules_dep,
        "kernel/net/802/stp.ko: kernel/net/llc/llc.ko\n\
         kernel/net/bridge/br_netfilter.ko: kernel/net/bridge/bridge.ko kernel/net/802/stp.ko \
         kernel/net/llc/llc.ko\n\
         kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko\n\
         kernel/net/llc/llc.ko:\n\
         kernel/net/netfilter/nf_tables.ko: kernel/net/netfilter/nfnetlink.ko\n\
         kernel/net/netfilter/nfnetlink.ko:\n\
         kernel/net/netfilter/nft_chain_nat.ko: kernel/net/netfilter/nf_tables.ko \
         kernel/net/netfilter/nfnetlink.ko\n"
    );
    assert_eq!(
        r.modules_alias,
        "alias nft-chain-10-nat nft_chain_nat\nalias nft-chain-2-nat nft_chain_nat\n"
    );
    assert_eq!(r.modules_builtin, "kernel/net/netfilter/nf_nat.ko\n");
    let all: Vec<String> = r.all_files().into_iter().map(|(p, _)| p).collect();
    assert!(all.contains(&"modules.dep".to_string()));

    let err = k
        .root_modules(&["kernel/net/nope"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("kernel/net/nope/"), "{err}");
}
