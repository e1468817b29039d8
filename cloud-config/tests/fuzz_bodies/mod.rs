//! The body of cloud-config's fuzz target, shared by `../fuzz/` (cargo-fuzz,
//! libFuzzer) and `../robustness.rs` (mutated fixtures in the ordinary test
//! suite): user-data is whatever anyone with the cloud console writes, and
//! the checker runs on it at every boot.

/// `validate` never panics, and every finding names a line of the input
/// and a column (a syntax error found at the end of the file included).
pub fn user_data(data: &[u8]) {
    let report = cloud_config::validate(data);
    // Lines as YAML counts them: a lone CR breaks a line too.
    let text = String::from_utf8_lossy(data).replace("\r\n", "\n");
    let lines = text.split(['\n', '\r']).count();
    for f in &report.findings {
        assert!(
            f.line >= 1 && f.line <= lines && f.column >= 1,
            "a finding outside the input ({lines} lines): {f:?}"
        );
    }
    let _ = report.render_text("user-data");
}

// ------------------------------------------------------------- datasources
//
// Metadata comes from a seed disk, fw_cfg or a metadata service: whoever
// made the disk or runs the network writes it. The bodies below return
// whether the input was accepted, so the smoke test can check that its
// valid seeds are.

use cloud_config::datasource::{self, CmdlineUrl, FsKind, Metadata};

/// Every SSH key is one trimmed, non-empty line.
fn check_keys(meta: &Metadata) {
    for key in &meta.public_keys {
        assert!(
            !key.is_empty() && key.trim() == key && !key.contains('\n'),
            "a key that is not one trimmed line: {key:?}"
        );
    }
}

/// `text` as a YAML double-quoted scalar, everything but printable ASCII
/// escaped (so no YAML line folding or BOM rule applies to it).
fn yaml_quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push_str(&format!("\\U{:08x}", u32::from(c))),
        }
    }
    out.push('"');
    out
}

/// NoCloud `meta-data` (YAML): accepted metadata, written back as a YAML
/// mapping of quoted strings and a list of keys, reads back the same.
pub fn nocloud_meta(data: &[u8]) -> bool {
    let Ok(meta) = datasource::parse_nocloud(data) else {
        return false;
    };
    check_keys(&meta);
    let mut yaml = String::new();
    for (key, value) in [
        ("instance-id", &meta.instance_id),
        ("local-hostname", &meta.local_hostname),
        ("public-ipv4", &meta.public_ipv4),
        ("local-ipv4", &meta.private_ipv4),
        ("public-ipv6", &meta.public_ipv6),
        ("local-ipv6", &meta.private_ipv6),
    ] {
        if let Some(v) = value {
            yaml += &format!("{key}: {}\n", yaml_quoted(v));
        }
    }
    yaml += "public-keys:\n";
    for key in &meta.public_keys {
        yaml += &format!("  - {}\n", yaml_quoted(key));
    }
    let again = datasource::parse_nocloud(yaml.as_bytes());
    assert_eq!(again.as_ref(), Ok(&meta), "written back as:\n{yaml}");
    true
}

/// ConfigDrive `meta_data.json`: accepted metadata has only the ID, host
/// name and keys, and written back as JSON reads back the same.
pub fn configdrive_meta(data: &[u8]) -> bool {
    let Ok(meta) = datasource::parse_configdrive(data) else {
        return false;
    };
    check_keys(&meta);
    let only_three = Metadata {
        instance_id: meta.instance_id.clone(),
        local_hostname: meta.local_hostname.clone(),
        public_keys: meta.public_keys.clone(),
        ..Metadata::default()
    };
    assert_eq!(meta, only_three);
    // Names sort as the keys came.
    let keys: serde_json::Map<String, serde_json::Value> = meta
        .public_keys
        .iter()
        .enumerate()
        .map(|(i, k)| (format!("k{i:06}"), k.clone().into()))
        .collect();
    let json = serde_json::json!({
        "uuid": meta.instance_id,
        "hostname": meta.local_hostname,
        "public_keys": keys,
    });
    let text = json.to_string();
    let again = datasource::parse_configdrive(text.as_bytes());
    assert_eq!(again.as_ref(), Ok(&meta), "written back as {text}");
    true
}

/// EC2 metadata values and the `public-keys/` listing: a value is the
/// trimmed text or nothing; the indexes are digits, at most one a line,
/// and a listing made of them names them again.
pub fn ec2_meta(data: &[u8]) -> bool {
    let Some(value) = datasource::ec2_value(data) else {
        assert!(String::from_utf8_lossy(data).trim().is_empty());
        return false;
    };
    assert!(!value.is_empty() && value.trim() == value, "{value:?}");
    let indexes = datasource::ec2_key_indexes(&value);
    assert!(indexes.len() <= value.lines().count());
    for index in &indexes {
        assert!(!index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()));
    }
    let listing: String = indexes.iter().map(|i| format!("{i}=key-{i}\n")).collect();
    assert_eq!(datasource::ec2_key_indexes(&listing), indexes);
    true
}

/// The label probe on a device's first bytes. First byte 1: the rest is
/// an ISO 9660 primary volume descriptor (placed at sector 16 of zeros),
/// else the bytes are the device's head as they are. A label found is
/// printable ASCII without trailing blanks, and written into a FAT boot
/// sector (if it fits in 11 bytes) or an ISO descriptor is found again.
pub fn fs_label(data: &[u8]) -> bool {
    let head = match data.split_first() {
        Some((1, rest)) => {
            let mut head = vec![0u8; datasource::LABEL_PROBE_BYTES];
            let n = rest.len().min(2048);
            head[32768..32768 + n].copy_from_slice(&rest[..n]);
            head
        }
        _ => data.to_vec(),
    };
    let Some((kind, label)) = datasource::filesystem_label(&head) else {
        return false;
    };
    assert!(
        !label.is_empty()
            && label.bytes().all(|b| (0x20..0x7f).contains(&b))
            && !label.ends_with(' '),
        "{label:?}"
    );
    assert!(kind == FsKind::Vfat || head.len() >= datasource::LABEL_PROBE_BYTES);
    let mut iso = vec![0u8; datasource::LABEL_PROBE_BYTES];
    iso[32768..32774].copy_from_slice(b"\x01CD001");
    iso[32774] = 1;
    iso[32808..32840].fill(b' ');
    iso[32808..32808 + label.len()].copy_from_slice(label.as_bytes());
    assert_eq!(
        datasource::filesystem_label(&iso),
        Some((FsKind::Iso9660, label.clone()))
    );
    if label.len() <= 11 && label != "NO NAME" {
        let mut fat = vec![0u8; 512];
        fat[0] = 0xEB;
        fat[11..13].copy_from_slice(&512u16.to_le_bytes());
        fat[13] = 1;
        fat[16] = 2;
        fat[22] = 9; // sectors per FAT: FAT12/16
        fat[0x26] = 0x29;
        fat[0x2B..0x2B + 11].fill(b' ');
        fat[0x2B..0x2B + label.len()].copy_from_slice(label.as_bytes());
        fat[510] = 0x55;
        fat[511] = 0xAA;
        assert_eq!(
            datasource::filesystem_label(&fat),
            Some((FsKind::Vfat, label))
        );
    }
    true
}

/// `cloud-config-url=` and `ds=nocloud;s=` on a kernel command line: a URL
/// found has no blanks, and the parameter written back names it again.
pub fn cmdline_url(data: &[u8]) -> bool {
    let line = String::from_utf8_lossy(data);
    let Some(found) = CmdlineUrl::from_cmdline(&line) else {
        return false;
    };
    let url = found.url();
    assert!(
        !url.is_empty() && !url.contains(char::is_whitespace),
        "{url:?}"
    );
    let written = match &found {
        CmdlineUrl::ConfigUrl(u) => format!("cloud-config-url={u}"),
        CmdlineUrl::NoCloud(net) => format!("ds=nocloud;s={}", net.base_url),
    };
    assert_eq!(
        CmdlineUrl::from_cmdline(&written).as_ref(),
        Some(&found),
        "{written:?}"
    );
    true
}
