//! The image's software bill of materials: an SPDX 2.3 JSON document
//! (`sbom.spdx.json` next to the disk) listing every Debian package the
//! build pinned and every crate compiled into the guest programs.
//!
//! - Debian packages: the pins of `inputs.lock` (kernel, bootloader,
//!   busybox, the extra packages and their dependency closure, of which
//!   only the files the programs need reach the root), each with the
//!   `.deb`'s sha256, a `pkg:deb` purl with the control file's
//!   architecture, and the licenses of `usr/share/doc/<pkg>/copyright`
//!   when it is machine-readable (DEP-5: a `Format:` header), mapped to
//!   SPDX identifiers; Debian short names SPDX lacks (`public-domain`,
//!   `Go`, `BSD-3-clause-Google`) become `LicenseRef-` entries carrying the
//!   text the file gives. Free-form copyright files give `NOASSERTION`.
//! - Crates: `cargo tree` of the guest packages for the guest target,
//!   normal edges only and without proc macros, which is the set the
//!   guest build compiles into the binaries with its own feature
//!   resolution. (`cargo metadata` resolves features for the whole
//!   workspace: it adds some 30 crates only the builder uses.) Versions
//!   and licenses come from cargo, checksums from `Cargo.lock`.
//!
//! Reproducible like the disk: `created` is `SOURCE_DATE_EPOCH`, the
//! namespace is made of the board, version and build ID, everything is
//! sorted, and nothing random or host-specific (paths, tool versions of
//! the machine) goes in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use slipway_image::deb;

use crate::inputs::{Inputs, Locked, Role};
use crate::paths;
use crate::util::sha256_bytes;

/// The artifact's name in the image folder.
pub const FILE: &str = "sbom.spdx.json";

/// What names the image the document describes.
#[derive(Debug, Clone)]
pub struct Identity<'a> {
    pub os_name: &'a str,
    pub board: &'a str,
    pub version: &'a str,
    pub build_id: &'a str,
    pub source_date_epoch: u64,
}

/// One crate compiled into the guest programs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Crate {
    pub name: String,
    pub version: String,
    /// The manifest's `license` expression (`/` already read as `OR`).
    pub license: Option<String>,
    pub origin: CrateOrigin,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum CrateOrigin {
    /// From crates.io, with `Cargo.lock`'s sha256 of the `.crate` file.
    Registry { sha256: String },
    /// A member of this workspace.
    Workspace,
    /// Any other source (git, another registry): no purl, no checksum.
    Other,
}

/// The crates `cargo build --target <guest target> -p <packages>` compiles
/// into the programs: `cargo tree` with normal edges only and no proc
/// macros (they run in the compiler; auditable builds call them build
/// dependencies too), matched against `Cargo.lock`.
pub fn guest_crates(packages: &[&str]) -> Result<Vec<Crate>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "tree",
        "--locked",
        "--target",
        crate::guest::TARGET,
        "--edges",
        "normal,no-proc-macro",
        "--prefix",
        "none",
        // License first: `cargo tree` appends ` (*)` to repeated crates.
        "--format",
        "{l}\t{p}",
    ]);
    for p in packages {
        cmd.args(["--package", p]);
    }
    let out = cmd
        .current_dir(paths::project_root())
        .output()
        .context("running cargo tree for the guest programs' crates")?;
    if !out.status.success() {
        bail!(
            "cargo tree for the guest programs failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let lock_path = paths::project_root().join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path)
        .with_context(|| format!("reading {}", lock_path.display()))?;
    crates_from(&String::from_utf8_lossy(&out.stdout), &lock)
        .with_context(|| format!("the guest crates in {}", lock_path.display()))
}

#[derive(Deserialize)]
struct CargoLock {
    #[serde(default)]
    package: Vec<LockedCrate>,
}

#[derive(Deserialize)]
struct LockedCrate {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
}

/// The crates of `cargo tree --format "{l}\t{p}" --prefix none` output,
/// each once, sorted, with their origin from `Cargo.lock`'s text.
fn crates_from(tree: &str, cargo_lock: &str) -> Result<Vec<Crate>> {
    let lock: CargoLock = toml::from_str(cargo_lock).context("parsing Cargo.lock")?;
    let mut crates = std::collections::BTreeSet::new();
    for line in tree.lines().filter(|l| !l.trim().is_empty()) {
        let (license, package) = line
            .split_once('\t')
            .with_context(|| format!("cargo tree printed `{line}`: no tab after the license"))?;
        let mut words = package.split_whitespace();
        let (Some(name), Some(version)) = (words.next(), words.next()) else {
            bail!("cargo tree printed `{line}`: expected `<name> v<version>`");
        };
        let version = version.strip_prefix('v').unwrap_or(version);
        let entries: Vec<&LockedCrate> = lock
            .package
            .iter()
            .filter(|c| c.name == name && c.version == version)
            .collect();
        let origin = match entries.as_slice() {
            [one] => match (&one.source, &one.checksum) {
                (None, _) => CrateOrigin::Workspace,
                (Some(s), Some(sum)) if s.starts_with("registry+") && is_crates_io(s) => {
                    CrateOrigin::Registry {
                        sha256: sum.clone(),
                    }
                }
                (Some(s), None) if s.starts_with("registry+") => {
                    bail!("`{name}` {version} has no checksum")
                }
                _ => CrateOrigin::Other,
            },
            [] => bail!("cargo tree names `{name}` {version}, which has no entry"),
            _ => bail!("`{name}` {version} has more than one entry (two sources)"),
        };
        let license = license.trim();
        crates.insert(Crate {
            name: name.to_string(),
            version: version.to_string(),
            // Old manifests write `MIT/Apache-2.0`, which crates.io reads
            // as `MIT OR Apache-2.0`.
            license: (!license.is_empty()).then(|| license.replace('/', " OR ")),
            origin,
        });
    }
    Ok(crates.into_iter().collect())
}

/// Whether a `Cargo.lock` source is crates.io, which is what a `pkg:cargo`
/// purl means. Cargo writes crates.io's source as this fixed identifier
/// whichever protocol or mirror fetched the crate.
fn is_crates_io(source: &str) -> bool {
    source == "registry+https://github.com/rust-lang/crates.io-index"
}

/// Writes [`document`] as [`FILE`] into `dir`; returns its size and sha256
/// for the manifest.
pub fn write(
    dir: &Path,
    inputs: &Inputs,
    crates: &[Crate],
    id: &Identity,
) -> Result<(u64, String)> {
    let bytes = document(inputs, crates, id)?;
    let path = dir.join(FILE);
    std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok((bytes.len() as u64, sha256_bytes(&bytes)))
}

/// The SPDX 2.3 JSON document of an image built from `inputs` with the
/// guest programs made of `crates`.
pub fn document(inputs: &Inputs, crates: &[Crate], id: &Identity) -> Result<Vec<u8>> {
    let mut debs = Vec::new();
    for l in &inputs.packages {
        debs.push(deb_facts(l).with_context(|| format!("the SBOM entry of {}", l.package))?);
    }
    let user_kernel = inputs
        .kernel_override_sha256
        .as_ref()
        .map(|sum| (inputs.kernel.release.clone(), sum.clone()));
    render(&debs, user_kernel, crates, id)
}

/// What the document says of one `.deb`, read from the cache.
#[derive(Debug, Clone)]
struct DebFacts {
    locked: Locked,
    architecture: String,
    /// `usr/share/doc/<pkg>/copyright` when it is DEP-5.
    copyright: Option<String>,
}

fn deb_facts(l: &Locked) -> Result<DebFacts> {
    // The cache's names, as `inputs` keeps them; `inputs::resolve` has
    // checked the `.deb` against the lock and unpacked it.
    let deb_path = paths::deb_cache().join(format!("{}_{}.deb", l.package, l.version));
    let control =
        deb::control(&deb_path).with_context(|| format!("reading {}", deb_path.display()))?;
    let architecture = control
        .field("Architecture")
        .with_context(|| format!("{}: no Architecture field", deb_path.display()))?
        .to_string();
    let root = paths::unpack_cache().join(format!("{}_{}", l.package, l.version));
    let marker = std::fs::read_to_string(root.join(".slipway-unpacked")).unwrap_or_default();
    if marker.trim() != l.sha256 {
        bail!(
            "{} is not the unpacked {} {} (its marker does not hold the pinned sha256): \
             build-image unpacks it",
            root.display(),
            l.package,
            l.version
        );
    }
    let copyright = read_copyright(&root, &l.package)?.filter(|text| is_dep5(text));
    Ok(DebFacts {
        locked: l.clone(),
        architecture,
        copyright,
    })
}

/// The package's own copyright file, if it has one. Symlinks are not
/// followed: library packages often link their doc folder to another
/// package's (`libgcc-s1` → `gcc-12-base`), which is not in this tree,
/// and an absolute link would reach the build host's files.
fn read_copyright(root: &Path, package: &str) -> Result<Option<String>> {
    let doc = root.join("usr/share/doc").join(package);
    let file = doc.join("copyright");
    let real = |p: &PathBuf, dir: bool| {
        std::fs::symlink_metadata(p).is_ok_and(|m| if dir { m.is_dir() } else { m.is_file() })
    };
    if !real(&doc, true) || !real(&file, false) {
        return Ok(None);
    }
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

// --- The document ------------------------------------------------------

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    spdx_version: &'static str,
    data_license: &'static str,
    #[serde(rename = "SPDXID")]
    spdx_id: &'static str,
    name: String,
    document_namespace: String,
    creation_info: CreationInfo,
    packages: Vec<Package>,
    relationships: Vec<Relationship>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    has_extracted_licensing_infos: Vec<ExtractedLicense>,
}

#[derive(Serialize)]
struct CreationInfo {
    created: String,
    creators: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Package {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    name: String,
    version_info: String,
    download_location: &'static str,
    files_analyzed: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    checksums: Vec<Checksum>,
    license_concluded: String,
    license_declared: String,
    copyright_text: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    primary_package_purpose: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    external_refs: Vec<ExternalRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Checksum {
    algorithm: &'static str,
    checksum_value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef {
    reference_category: &'static str,
    reference_type: &'static str,
    reference_locator: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Relationship {
    spdx_element_id: String,
    relationship_type: &'static str,
    related_spdx_element: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExtractedLicense {
    license_id: String,
    name: String,
    extracted_text: String,
    comment: String,
}

const NOASSERTION: &str = "NOASSERTION";
const IMAGE_ID: &str = "SPDXRef-image";

fn render(
    debs: &[DebFacts],
    user_kernel: Option<(String, String)>,
    crates: &[Crate],
    id: &Identity,
) -> Result<Vec<u8>> {
    let mut refs = LicenseRefs::default();
    let mut packages = vec![Package {
        spdx_id: IMAGE_ID.to_string(),
        name: format!("{}-{}", slug(id.os_name), id.board),
        version_info: id.version.to_string(),
        download_location: NOASSERTION,
        files_analyzed: false,
        checksums: Vec::new(),
        license_concluded: NOASSERTION.into(),
        license_declared: NOASSERTION.into(),
        copyright_text: NOASSERTION,
        primary_package_purpose: Some("OPERATING-SYSTEM"),
        external_refs: Vec::new(),
        comment: Some(format!(
            "The disk image of board {} (build ID {}).",
            id.board, id.build_id
        )),
    }];
    let mut debs: Vec<&DebFacts> = debs.iter().collect();
    debs.sort_by(|a, b| a.locked.package.cmp(&b.locked.package));
    for d in debs {
        let l = &d.locked;
        let license = match &d.copyright {
            Some(text) => dep5_license(text, &l.package, &mut refs),
            None => NOASSERTION.to_string(),
        };
        packages.push(Package {
            spdx_id: format!("SPDXRef-deb-{}", id_chars(&l.package)),
            name: l.package.clone(),
            version_info: l.version.clone(),
            download_location: NOASSERTION,
            files_analyzed: false,
            checksums: vec![sha256(&l.sha256)],
            license_concluded: license.clone(),
            license_declared: license,
            copyright_text: NOASSERTION,
            primary_package_purpose: None,
            external_refs: vec![purl(format!(
                "pkg:deb/debian/{}@{}?arch={}",
                pct(&l.package),
                pct(&l.version),
                pct(&d.architecture)
            ))],
            comment: Some(role_comment(l.role).to_string()),
        });
    }
    if let Some((release, sum)) = user_kernel {
        packages.push(Package {
            spdx_id: "SPDXRef-user-kernel".into(),
            name: "kernel".into(),
            version_info: release,
            download_location: NOASSERTION,
            files_analyzed: false,
            checksums: vec![sha256(&sum)],
            license_concluded: NOASSERTION.into(),
            license_declared: NOASSERTION.into(),
            copyright_text: NOASSERTION,
            primary_package_purpose: None,
            external_refs: Vec::new(),
            comment: Some("The kernel image given with --kernel.".into()),
        });
    }
    let mut crates: Vec<&Crate> = crates.iter().collect();
    crates.sort();
    for c in crates {
        let (checksums, external_refs, comment) = match &c.origin {
            CrateOrigin::Registry { sha256: sum } => (
                vec![sha256(sum)],
                vec![purl(format!(
                    "pkg:cargo/{}@{}",
                    pct(&c.name),
                    pct(&c.version)
                ))],
                "A crate compiled into the guest programs.",
            ),
            CrateOrigin::Workspace => (
                Vec::new(),
                Vec::new(),
                "A crate of this project compiled into the guest programs.",
            ),
            CrateOrigin::Other => (
                Vec::new(),
                Vec::new(),
                "A crate from a source other than crates.io compiled into the guest programs.",
            ),
        };
        let license = c.license.clone().unwrap_or_else(|| NOASSERTION.into());
        packages.push(Package {
            spdx_id: format!(
                "SPDXRef-crate-{}-{}",
                id_chars(&c.name),
                id_chars(&c.version)
            ),
            name: c.name.clone(),
            version_info: c.version.clone(),
            download_location: NOASSERTION,
            files_analyzed: false,
            checksums,
            license_concluded: license.clone(),
            license_declared: license,
            copyright_text: NOASSERTION,
            primary_package_purpose: Some("LIBRARY"),
            external_refs,
            comment: Some(comment.into()),
        });
    }

    let mut seen = std::collections::BTreeSet::new();
    for p in &packages {
        if !seen.insert(p.spdx_id.as_str()) {
            bail!(
                "two SBOM entries get the SPDX ID {} (names differing only in characters \
                 SPDX IDs cannot hold)",
                p.spdx_id
            );
        }
    }
    let mut relationships = vec![Relationship {
        spdx_element_id: "SPDXRef-DOCUMENT".into(),
        relationship_type: "DESCRIBES",
        related_spdx_element: IMAGE_ID.into(),
    }];
    relationships.extend(packages.iter().skip(1).map(|p| Relationship {
        spdx_element_id: IMAGE_ID.into(),
        relationship_type: "CONTAINS",
        related_spdx_element: p.spdx_id.clone(),
    }));
    let name = format!(
        "{}-{}-{}-{}",
        slug(id.os_name),
        id.board,
        id.version,
        id.build_id
    );
    let doc = Document {
        spdx_version: "SPDX-2.3",
        data_license: "CC0-1.0",
        spdx_id: "SPDXRef-DOCUMENT",
        // `.invalid` (RFC 6761) never resolves: the namespace only has to
        // be a unique absolute URI, and this one is the same for the same
        // build.
        document_namespace: format!(
            "https://slipway.invalid/spdx/{}/{}/{}",
            pct(id.board),
            pct(id.version),
            pct(id.build_id)
        ),
        name,
        creation_info: CreationInfo {
            created: humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(id.source_date_epoch),
            )
            .to_string(),
            creators: vec![format!("Tool: slipway-xtask-{}", env!("CARGO_PKG_VERSION"))],
        },
        packages,
        relationships,
        has_extracted_licensing_infos: refs.into_entries(),
    };
    serde_json::to_vec_pretty(&doc).context("serialising the SBOM")
}

fn role_comment(role: Role) -> &'static str {
    match role {
        Role::Kernel => "The kernel (and the modules the board lists).",
        Role::Bootloader => "The boot loader (systemd-boot on the ESP).",
        Role::Busybox => "The static busybox of the initramfs and the root.",
        Role::Extra => "Listed by the board (packages.extra): its programs are on the root.",
        Role::Dependency => {
            "A dependency of the listed packages: the files their programs need are on the root."
        }
    }
}

fn sha256(hex: &str) -> Checksum {
    Checksum {
        algorithm: "SHA256",
        checksum_value: hex.to_string(),
    }
}

fn purl(locator: String) -> ExternalRef {
    ExternalRef {
        reference_category: "PACKAGE-MANAGER",
        reference_type: "purl",
        reference_locator: locator,
    }
}

/// Percent-encoding of a purl component: unreserved characters and `:`
/// (Debian epochs) stay, everything else (`+` of Debian versions and
/// semver build metadata) is encoded, as the purl specification asks.
fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What an SPDX ID may hold: letters, digits, `.` and `-`.
fn id_chars(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// `Slipway` → `slipway`, for names built from the OS name.
fn slug(s: &str) -> String {
    id_chars(&s.to_lowercase())
}

// --- DEP-5 copyright files -----------------------------------------------

/// Whether a copyright file is machine-readable: its first field is
/// `Format:` (DEP-5, "copyright-format/1.0").
fn is_dep5(text: &str) -> bool {
    text.lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .is_some_and(|l| l.to_ascii_lowercase().starts_with("format:"))
}

/// A paragraph's fields: name (lower case) → value, continuation lines
/// joined by newlines with the ` .` blank-line marker read as empty.
fn paragraphs(text: &str) -> Vec<BTreeMap<String, String>> {
    let mut out = Vec::new();
    let mut cur: BTreeMap<String, String> = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            last = None;
        } else if line.starts_with('#') {
            continue;
        } else if line.starts_with([' ', '\t']) {
            if let Some(v) = last.as_ref().and_then(|k| cur.get_mut(k)) {
                let t = line.trim();
                v.push('\n');
                v.push_str(if t == "." { "" } else { t });
            }
        } else if let Some((k, v)) = line.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            cur.insert(k.clone(), v.trim().to_string());
            last = Some(k);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The package's license as one SPDX expression: every `Files:`
/// paragraph's license (its `License:` first line) once, joined by `AND`
/// (the package holds all those files).
fn dep5_license(text: &str, package: &str, refs: &mut LicenseRefs) -> String {
    let paras = paragraphs(text);
    // Stand-alone license paragraphs: short name → text.
    let texts: BTreeMap<String, String> = paras
        .iter()
        .filter(|p| !p.contains_key("files") && !p.contains_key("format"))
        .filter_map(|p| {
            let (name, body) = p.get("license")?.split_once('\n')?;
            Some((name.trim().to_string(), body.trim().to_string()))
        })
        .collect();
    let mut found = std::collections::BTreeSet::new();
    for p in paras.iter().filter(|p| p.contains_key("files")) {
        let Some(field) = p.get("license") else {
            continue;
        };
        let (names, body) = field.split_once('\n').unwrap_or((field, ""));
        if names.trim().is_empty() {
            continue;
        }
        let ctx = Dep5Context {
            package,
            texts: &texts,
            inline: body.trim(),
        };
        let e = expression(names.trim(), &ctx, refs);
        // `A and B` adds A and B: the package's list stays flat.
        if e.contains('(') || e.contains(" OR ") {
            found.insert(e);
        } else {
            found.extend(e.split(" AND ").map(str::to_string));
        }
    }
    if found.is_empty() {
        return NOASSERTION.to_string();
    }
    let wrap = |e: &String| {
        if found.len() > 1 && e.contains(' ') {
            format!("({e})")
        } else {
            e.clone()
        }
    };
    found.iter().map(wrap).collect::<Vec<_>>().join(" AND ")
}

struct Dep5Context<'a> {
    package: &'a str,
    /// The stand-alone license paragraphs' texts.
    texts: &'a BTreeMap<String, String>,
    /// The text under the `License:` line of the paragraph at hand.
    inline: &'a str,
}

/// A DEP-5 license line (`GPL-2+ or BSD-3-clause`, `GPL-2 with
/// Linux-syscall-note exception`, `A or B, and C`) as SPDX.
fn expression(line: &str, ctx: &Dep5Context, refs: &mut LicenseRefs) -> String {
    // A comma splits at the lowest precedence: `A or B, and C` is
    // `(A or B) and C`.
    let mut segments = line.split(',');
    let first = segments.next().unwrap_or_default();
    let mut out = simple_expression(first, ctx, refs);
    for seg in segments {
        let seg = seg.trim();
        let (op, rest) = seg.split_once(char::is_whitespace).unwrap_or(("and", seg));
        let op = if op.eq_ignore_ascii_case("or") {
            "OR"
        } else {
            "AND"
        };
        out = format!(
            "({out}) {op} ({})",
            simple_expression(rest.trim(), ctx, refs)
        );
    }
    out
}

fn simple_expression(text: &str, ctx: &Dep5Context, refs: &mut LicenseRefs) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut term: Vec<&str> = Vec::new();
    for w in text.split_whitespace() {
        if w.eq_ignore_ascii_case("or") || w.eq_ignore_ascii_case("and") {
            if !term.is_empty() {
                out.push(license_term(&term, ctx, refs));
                out.push(w.to_ascii_uppercase());
                term.clear();
            }
        } else {
            term.push(w);
        }
    }
    if term.is_empty() {
        // A line ending in an operator: drop it.
        out.pop();
    } else {
        out.push(license_term(&term, ctx, refs));
    }
    out.join(" ")
}

/// One license of a DEP-5 line: a short name, or `<name> with <exception>
/// exception`.
fn license_term(words: &[&str], ctx: &Dep5Context, refs: &mut LicenseRefs) -> String {
    let whole = words.join(" ");
    if let [name] = words {
        if let Some(id) = spdx_id(name) {
            return id;
        }
    }
    if let [name, with, exception, last] = words {
        let known = with.eq_ignore_ascii_case("with")
            && last.eq_ignore_ascii_case("exception")
            && *exception == "Linux-syscall-note";
        if let (true, Some(id)) = (known, spdx_id(name)) {
            return format!("{id} WITH {exception}");
        }
    }
    let text = ctx
        .texts
        .get(&whole)
        .map(String::as_str)
        .filter(|t| !t.is_empty())
        .or_else(|| (!ctx.inline.is_empty()).then_some(ctx.inline))
        .map(str::to_string)
        .unwrap_or_else(|| {
            format!(
                "usr/share/doc/{}/copyright names the license `{whole}` without its text.",
                ctx.package
            )
        });
    refs.get(&whole, text, ctx.package)
}

/// The SPDX identifier of a DEP-5 short name, if SPDX has one meaning the
/// same license (DEP-5's `GPL-2` is version 2 only, `GPL-2+` or later;
/// `Expat` is SPDX's `MIT`).
fn spdx_id(name: &str) -> Option<String> {
    const PLAIN: [&str; 27] = [
        "0BSD",
        "Apache-1.0",
        "Apache-1.1",
        "Apache-2.0",
        "Artistic-2.0",
        "BSD-2-Clause",
        "BSD-3-Clause",
        "BSD-4-Clause",
        "BSL-1.0",
        "CC-BY-3.0",
        "CC-BY-4.0",
        "CC-BY-SA-3.0",
        "CC-BY-SA-4.0",
        "CC0-1.0",
        "CDDL-1.0",
        "EPL-1.0",
        "EPL-2.0",
        "ISC",
        "MIT",
        "MPL-1.1",
        "MPL-2.0",
        "OpenSSL",
        "Python-2.0",
        "Unicode-DFS-2016",
        "Unlicense",
        "X11",
        "Zlib",
    ];
    if let Some(id) = PLAIN.iter().find(|id| id.eq_ignore_ascii_case(name)) {
        return Some(id.to_string());
    }
    match name.to_ascii_lowercase().as_str() {
        "expat" => return Some("MIT".into()),
        "wtfpl" | "wtfpl-2" => return Some("WTFPL".into()),
        _ => {}
    }
    // The versioned GNU licenses: <family>-<version>[+].
    let (base, later) = match name.strip_suffix('+') {
        Some(b) => (b, true),
        None => (name, false),
    };
    let (family, version) = base.rsplit_once('-')?;
    let version = match (family.to_ascii_uppercase().as_str(), version) {
        ("GPL", "1" | "1.0") => "GPL-1.0",
        ("GPL", "2" | "2.0") => "GPL-2.0",
        ("GPL", "3" | "3.0") => "GPL-3.0",
        ("LGPL", "2" | "2.0") => "LGPL-2.0",
        ("LGPL", "2.1") => "LGPL-2.1",
        ("LGPL", "3" | "3.0") => "LGPL-3.0",
        ("AGPL", "3" | "3.0") => "AGPL-3.0",
        ("GFDL", "1.1") => "GFDL-1.1",
        ("GFDL", "1.2") => "GFDL-1.2",
        ("GFDL", "1.3") => "GFDL-1.3",
        _ => return None,
    };
    Some(format!(
        "{version}-{}",
        if later { "or-later" } else { "only" }
    ))
}

/// The document's `LicenseRef-` entries: one per Debian short name and
/// text (`public-domain` means another text in almost every package; the
/// systemd packages share theirs).
#[derive(Default)]
struct LicenseRefs {
    /// id → (short name, text, packages).
    entries: BTreeMap<String, (String, String, Vec<String>)>,
}

impl LicenseRefs {
    fn get(&mut self, name: &str, text: String, package: &str) -> String {
        let base = format!("LicenseRef-{}", id_chars(name));
        let same = self
            .entries
            .iter()
            .find(|(_, (n, t, _))| n == name && *t == text)
            .map(|(id, _)| id.clone());
        let id = match same {
            Some(id) => id,
            None if self.entries.contains_key(&base) => {
                format!("{base}-{}", id_chars(package))
            }
            None => base,
        };
        let entry = self
            .entries
            .entry(id.clone())
            .or_insert_with(|| (name.to_string(), text, Vec::new()));
        if !entry.2.iter().any(|p| p == package) {
            entry.2.push(package.to_string());
        }
        id
    }

    fn into_entries(self) -> Vec<ExtractedLicense> {
        self.entries
            .into_iter()
            .map(|(id, (name, text, packages))| ExtractedLicense {
                license_id: id,
                comment: format!(
                    "Named `{name}` in the Debian copyright file of {}.",
                    packages.join(", ")
                ),
                name,
                extracted_text: text,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep5(text: &str) -> (String, Vec<ExtractedLicense>) {
        let mut refs = LicenseRefs::default();
        let got = dep5_license(text, "pkg", &mut refs);
        (got, refs.into_entries())
    }

    #[test]
    fn dep5_short_names_become_spdx_expressions() {
        let text = "\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: example

Files: *
Copyright: 2020 Someone
License: GPL-2+ or BSD-3-clause

Files: lib/*
Copyright: 2021 Else
License: Expat

Files: uapi/*
License: GPL-2 with Linux-syscall-note exception

Files: debian/*
License: LGPL-2.1
";
        let (got, refs) = dep5(text);
        assert_eq!(
            got,
            "(GPL-2.0-only WITH Linux-syscall-note) AND (GPL-2.0-or-later OR BSD-3-Clause) \
             AND LGPL-2.1-only AND MIT"
        );
        assert!(refs.is_empty());
    }

    #[test]
    fn names_spdx_lacks_are_license_refs_with_their_text() {
        let text = "\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
License: Apache-2.0 and Go

Files: vendor/x/*
License: public-domain
 The author dedicates this to the public domain.

License: Go
 Redistribution and use in source and binary forms...
 .
 Second paragraph.
";
        let (got, refs) = dep5(text);
        assert_eq!(
            got,
            "Apache-2.0 AND LicenseRef-Go AND LicenseRef-public-domain"
        );
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0].license_id, "LicenseRef-Go");
        assert_eq!(
            refs[0].extracted_text,
            "Redistribution and use in source and binary forms...\n\nSecond paragraph."
        );
        assert_eq!(
            refs[1].extracted_text,
            "The author dedicates this to the public domain."
        );
    }

    #[test]
    fn one_name_with_two_texts_gets_a_ref_per_package() {
        let mut refs = LicenseRefs::default();
        assert_eq!(refs.get("PD", "a".into(), "one"), "LicenseRef-PD");
        assert_eq!(refs.get("PD", "a".into(), "two"), "LicenseRef-PD");
        assert_eq!(refs.get("PD", "b".into(), "lib+x"), "LicenseRef-PD-lib-x");
        assert_eq!(refs.get("PD", "b".into(), "three"), "LicenseRef-PD-lib-x");
        let entries = refs.into_entries();
        assert_eq!(entries.len(), 2);
        assert!(
            entries[1].comment.contains("lib+x, three"),
            "{}",
            entries[1].comment
        );
        assert!(
            entries[0].comment.contains("one, two"),
            "{}",
            entries[0].comment
        );
    }

    #[test]
    fn commas_split_at_the_lowest_precedence() {
        let (got, _) =
            dep5("Format: x\n\nFiles: *\nLicense: GPL-2+ or Artistic-2.0, and BSD-3-clause\n");
        assert_eq!(got, "(GPL-2.0-or-later OR Artistic-2.0) AND (BSD-3-Clause)");
    }

    #[test]
    fn free_form_copyright_files_are_not_dep5() {
        assert!(!is_dep5(
            "This package was debianized by Erik Andersen on\nLicense: GPL-2\n"
        ));
        assert!(is_dep5("# comment\nFormat: http://x/1.0/\n"));
    }

    #[test]
    fn gnu_versions_and_aliases() {
        for (debian, spdx) in [
            ("GPL-2", "GPL-2.0-only"),
            ("GPL-2.0+", "GPL-2.0-or-later"),
            ("LGPL-2.1+", "LGPL-2.1-or-later"),
            ("LGPL-3+", "LGPL-3.0-or-later"),
            ("bsd-2-clause", "BSD-2-Clause"),
            ("zlib", "Zlib"),
            ("WTFPL-2", "WTFPL"),
        ] {
            assert_eq!(spdx_id(debian).as_deref(), Some(spdx), "{debian}");
        }
        for other in [
            "GPL-4",
            "BSD-3-clause-Google",
            "GPL-2+-or-X11",
            "Artistic",
            "Go",
        ] {
            assert_eq!(spdx_id(other), None, "{other}");
        }
    }

    const LOCK: &str = r#"
version = 4

[[package]]
name = "anyhow"
version = "1.0.105"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "aaaa"

[[package]]
name = "slipway-init"
version = "0.1.0"
dependencies = ["anyhow"]

[[package]]
name = "zstd-sys"
version = "2.1.3+zstd.1.5.7"
source = "registry+https://github.com/rust-lang/crates.io-index"
checksum = "bbbb"
"#;

    #[test]
    fn cargo_tree_lines_with_cargo_lock() {
        let tree = "Apache-2.0\tslipway-init v0.1.0 (/work/main/initramfs/init)\n\
                    MIT/Apache-2.0\tanyhow v1.0.105\n\
                    \n\
                    MIT/Apache-2.0\tanyhow v1.0.105 (*)\n\
                    BSD-3-Clause\tzstd-sys v2.1.3+zstd.1.5.7\n";
        let got = crates_from(tree, LOCK).unwrap();
        assert_eq!(
            got,
            [
                Crate {
                    name: "anyhow".into(),
                    version: "1.0.105".into(),
                    license: Some("MIT OR Apache-2.0".into()),
                    origin: CrateOrigin::Registry {
                        sha256: "aaaa".into()
                    },
                },
                Crate {
                    name: "slipway-init".into(),
                    version: "0.1.0".into(),
                    license: Some("Apache-2.0".into()),
                    origin: CrateOrigin::Workspace,
                },
                Crate {
                    name: "zstd-sys".into(),
                    version: "2.1.3+zstd.1.5.7".into(),
                    license: Some("BSD-3-Clause".into()),
                    origin: CrateOrigin::Registry {
                        sha256: "bbbb".into()
                    },
                },
            ]
        );
        let err = crates_from("MIT\tserde v9.9.9\n", LOCK).unwrap_err();
        assert!(err.to_string().contains("`serde` 9.9.9"), "{err}");
    }

    #[test]
    fn purl_components_are_percent_encoded() {
        assert_eq!(pct("1:1.35.0-4+deb12u1+b1"), "1:1.35.0-4%2Bdeb12u1%2Bb1");
        assert_eq!(pct("libstdc++6"), "libstdc%2B%2B6");
        assert_eq!(id_chars("libstdc++6"), "libstdc--6");
    }

    fn facts(package: &str, copyright: Option<&str>) -> DebFacts {
        DebFacts {
            locked: Locked {
                role: Role::Dependency,
                requested: package.into(),
                package: package.into(),
                version: "1:2.0+b1".into(),
                sha256: "c".repeat(64),
            },
            architecture: "all".into(),
            copyright: copyright.map(str::to_string),
        }
    }

    fn identity() -> Identity<'static> {
        Identity {
            os_name: "Slipway",
            board: "qemu-x86_64",
            version: "0.1.0",
            build_id: "0123456789ab",
            source_date_epoch: 1_700_000_000,
        }
    }

    #[test]
    fn the_document_is_sorted_and_names_its_build() {
        let crates = crates_from("Apache-2.0\tslipway-init v0.1.0 (/x)\n", LOCK).unwrap();
        let debs = [
            facts("zlib1g", Some("Format: x\n\nFiles: *\nLicense: Zlib\n")),
            facts("libc6", None),
        ];
        let bytes = render(&debs, None, &crates, &identity()).unwrap();
        let again = render(
            &[debs[1].clone(), debs[0].clone()],
            None,
            &crates,
            &identity(),
        );
        assert_eq!(bytes, again.unwrap());
        let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(doc["creationInfo"]["created"], "2023-11-14T22:13:20Z");
        assert_eq!(
            doc["documentNamespace"],
            "https://slipway.invalid/spdx/qemu-x86_64/0.1.0/0123456789ab"
        );
        let names: Vec<&str> = doc["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["slipway-qemu-x86_64", "libc6", "zlib1g", "slipway-init"]
        );
        let zlib = &doc["packages"][2];
        assert_eq!(zlib["licenseDeclared"], "Zlib");
        assert_eq!(
            zlib["externalRefs"][0]["referenceLocator"],
            "pkg:deb/debian/zlib1g@1:2.0%2Bb1?arch=all"
        );
        assert_eq!(doc["packages"][1]["licenseDeclared"], "NOASSERTION");
        assert!(doc["packages"][3].get("externalRefs").is_none());
        let rels = doc["relationships"].as_array().unwrap();
        assert_eq!(rels.len(), 4);
        assert_eq!(rels[0]["relationshipType"], "DESCRIBES");
        assert_eq!(
            rels[3]["relatedSpdxElement"],
            "SPDXRef-crate-slipway-init-0.1.0"
        );
    }
}
