//! The bodies of the init's fuzz targets, shared by `../../fuzz/`
//! (cargo-fuzz, its own workspace, includes this file with `#[path]`) and
//! `../fuzz_smoke.rs` (regression inputs, seeds and their mutations in the
//! ordinary test suite). Each takes arbitrary bytes, must never panic,
//! checks a property a wrong parser would break, and returns whether the
//! input was accepted (so the smoke test can check its valid seeds are).
//! Dependencies: `slipway_init` and `crc32fast` (for `gpt_disk.rs`), which
//! both users name.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use slipway_init::gpt_grow;
use slipway_init::units::{self, Context, LoadState, UnitSet};

// ------------------------------------------------------------------ units

/// A folder of this process's own, the root unit files are written under.
fn units_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let root = std::env::temp_dir().join(format!("slipway-fuzz-units-{}", std::process::id()));
        std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
        root
    })
}

/// The unit's name, from the first byte.
const NAMES: [&str; 4] = [
    "fuzz.service",
    "fuzz.socket",
    "fuzz.target",
    "fuzz@inst.service",
];

/// A unit file and a drop-in, as `load_unit` reads them: the first byte
/// picks the unit's name (a service, a socket, a target, an instance of a
/// template), the rest up to a NUL byte is the unit file, after it the
/// drop-in (`<name>.d/10-fuzz.conf`). Loading never fails outright, every
/// diagnostic names the unit and a line of the file it names, loading
/// twice gives the same unit, and ordering the unit does not panic.
pub fn unit_file(data: &[u8]) -> bool {
    let Some((&pick, rest)) = data.split_first() else {
        return false;
    };
    let name = NAMES[usize::from(pick) % NAMES.len()];
    let file_name = name.replace("@inst", "@");
    let (main, drop_in) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let main = String::from_utf8_lossy(main);
    let drop_in = drop_in.map(String::from_utf8_lossy);
    let root = units_root();
    let dir = root.join("etc/systemd/system");
    let drop_dir = dir.join(format!("{name}.d"));
    let _ = std::fs::remove_dir_all(&drop_dir);
    for other in NAMES {
        let _ = std::fs::remove_file(dir.join(other.replace("@inst", "@")));
    }
    std::fs::write(dir.join(&file_name), main.as_bytes()).unwrap();
    if let Some(text) = &drop_in {
        std::fs::create_dir_all(&drop_dir).unwrap();
        std::fs::write(drop_dir.join("10-fuzz.conf"), text.as_bytes()).unwrap();
    }
    let ctx = Context {
        hostname: "node1.example".into(),
        machine_id: "0123456789abcdef0123456789abcdef".into(),
        boot_id: "fedcba9876543210fedcba9876543210".into(),
    };
    let (unit, diags) = units::load_unit(root, name, &ctx);
    assert_eq!(unit.name, name);
    let lines_of = |file: &Path| -> usize {
        let text = if file.ends_with(&file_name) {
            main.as_ref()
        } else if file.ends_with("10-fuzz.conf") {
            drop_in.as_deref().unwrap_or_default()
        } else {
            ""
        };
        text.lines().count().max(1)
    };
    for d in &diags {
        assert_eq!(d.unit, name, "{d}");
        if let Some(line) = d.line {
            assert!(line >= 1 && line <= lines_of(&d.file), "{d}");
        }
    }
    if unit.load == LoadState::Loaded {
        assert!(!unit.sources.is_empty());
    }
    let (again, diags_again) = units::load_unit(root, name, &ctx);
    assert_eq!(again, unit, "loading twice differs");
    assert_eq!(diags_again, diags);
    let loaded = unit.load == LoadState::Loaded;
    let set = UnitSet::from_units([unit]);
    let _ = units::start_order(&set);
    loaded
}

/// An `EnvironmentFile=`: every name is valid, and the variables written
/// back as `NAME="value"` (with `"`, `\`, `` ` ``, `$` escaped) read back
/// the same, unless a value holds a CR (a line's CR before its LF is not
/// part of it, so such values cannot be written back as they are).
pub fn env_file(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let vars = units::parse_env_file(&text);
    for (name, _) in &vars {
        let mut chars = name.chars();
        assert!(
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{name:?}"
        );
    }
    if vars.iter().any(|(_, v)| v.contains('\r')) {
        return !vars.is_empty();
    }
    let mut written = String::new();
    for (name, value) in &vars {
        written += name;
        written += "=\"";
        for c in value.chars() {
            if matches!(c, '"' | '\\' | '`' | '$') {
                written.push('\\');
            }
            written.push(c);
        }
        written += "\"\n";
    }
    assert_eq!(
        units::parse_env_file(&written),
        vars,
        "written back as {written:?}"
    );
    !vars.is_empty()
}

// -------------------------------------------------------------------- GPT

#[path = "../../../../boot-contract/tests/fuzz_support/gpt_disk.rs"]
pub mod gpt_disk;
use gpt_disk::{gpt_disk, SparseDisk, BLOCK};

/// The growth of `var` (`gpt_grow::plan`) and the PARTUUID lookup
/// (`partition_guids`) on the disk [`gpt_disk`] describes. Writes stay on
/// the disk and on whole sectors, `var` never shrinks; the writes done, a
/// second plan has nothing to write and the lookup finds the same
/// partitions; and a power cut after any write leaves a disk whose own
/// plan, done, leaves nothing to write.
pub fn gpt_grow(data: &[u8]) -> bool {
    let Some((disk, _)) = gpt_disk(data) else {
        return false;
    };
    let guids = gpt_grow::partition_guids(&mut disk.clone(), BLOCK);
    let _ = gpt_grow::declared_size(&mut disk.clone(), BLOCK);
    let Ok(growth) = gpt_grow::plan(&mut disk.clone(), BLOCK, disk.len) else {
        return false;
    };
    assert!(growth.var_new_size >= growth.var_old_size, "{growth:?}");
    // Left as the table has it (it may lie beyond the disk), or grown
    // within the disk.
    match growth.cannot_grow {
        Some(_) => assert!(growth.writes.is_empty()),
        None => assert!(growth.var_offset + growth.var_new_size <= disk.len),
    }
    for w in &growth.writes {
        assert!(
            w.offset.is_multiple_of(BLOCK)
                && (w.data.len() as u64).is_multiple_of(BLOCK)
                && w.offset + w.data.len() as u64 <= disk.len,
            "{} at {} ({} bytes) on a disk of {}",
            w.what,
            w.offset,
            w.data.len(),
            disk.len
        );
    }
    let settled = |mut d: SparseDisk, what: &str| -> SparseDisk {
        let again = gpt_grow::plan(&mut d.clone(), BLOCK, d.len)
            .unwrap_or_else(|e| panic!("{what}: var is lost: {e}"));
        for w in &again.writes {
            d.write_at(w.offset, &w.data);
        }
        let last = gpt_grow::plan(&mut d.clone(), BLOCK, d.len).unwrap();
        assert!(last.writes.is_empty(), "{what}: still writes {last:?}");
        assert_eq!(last.var_new_size, again.var_new_size, "{what}");
        d
    };
    let mut done = disk.clone();
    for (i, w) in growth.writes.iter().enumerate() {
        done.write_at(w.offset, &w.data);
        settled(done.clone(), &format!("cut after write {i} ({})", w.what));
    }
    let after = gpt_grow::plan(&mut done.clone(), BLOCK, done.len).unwrap();
    assert!(after.writes.is_empty(), "a second plan writes {after:?}");
    assert_eq!(after.var_new_size, growth.var_new_size);
    // A damaged primary is rebuilt as part of a growth only.
    assert!(!after.repairs_primary || growth.cannot_grow.is_some());
    if let Ok(before) = guids {
        let now = gpt_grow::partition_guids(&mut done, BLOCK);
        assert_eq!(
            now.as_ref(),
            Ok(&before),
            "the growth changed the partitions"
        );
    }
    true
}
