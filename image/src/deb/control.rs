//! The control paragraph of a binary package (Debian Policy 5.1): `Field:
//! value` lines, continuation lines starting with a space or tab.

use std::collections::BTreeMap;
use std::path::Path;

use super::DebError;

/// The fields of a package's `control` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    pub package: String,
    pub version: String,
    pub architecture: String,
    /// The package names of `Depends`, taking the first alternative of each
    /// item and dropping version constraints, architecture qualifiers and
    /// restrictions: `a (>= 1) | b, c:any` gives `[a, c]`.
    pub depends: Vec<String>,
    /// Every field as written, multi-line values joined with `\n`.
    pub fields: BTreeMap<String, String>,
}

impl Control {
    /// A field by name; field names are case-insensitive in Debian.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub(super) fn parse(deb: &Path, text: &str) -> Result<Control, DebError> {
    let fields = parse_paragraph(deb, text)?;
    let mut control = Control {
        package: String::new(),
        version: String::new(),
        architecture: String::new(),
        depends: Vec::new(),
        fields,
    };
    let required = |control: &Control, field: &'static str| {
        control
            .field(field)
            .map(str::to_string)
            .ok_or_else(|| DebError::MissingField {
                deb: deb.to_path_buf(),
                field,
            })
    };
    control.package = required(&control, "Package")?;
    control.version = required(&control, "Version")?;
    control.architecture = required(&control, "Architecture")?;
    control.depends = control
        .field("Depends")
        .map(first_alternatives)
        .unwrap_or_default();
    Ok(control)
}

fn parse_paragraph(deb: &Path, text: &str) -> Result<BTreeMap<String, String>, DebError> {
    let bad = |line: usize, reason| DebError::BadControl {
        deb: deb.to_path_buf(),
        line,
        reason,
    };
    let mut fields = BTreeMap::new();
    // The field being read; stored once its continuation lines are in.
    let mut current: Option<(String, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        if line.trim().is_empty() {
            // A binary package's control file is one paragraph; anything
            // after the blank line that ends it is not ours to read.
            if current.is_some() {
                break;
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let (_, value) = current
                .as_mut()
                .ok_or_else(|| bad(number, "continuation line before any field"))?;
            value.push('\n');
            value.push_str(&line[1..]);
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad(number, "expected `Field: value`"))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(bad(number, "empty field name"));
        }
        fields.extend(current.replace((name.to_string(), value.trim().to_string())));
    }
    fields.extend(current);
    Ok(fields)
}

/// `a (>= 1) | b, c:any [amd64] <!nocheck>` → `[a, c]`.
fn first_alternatives(depends: &str) -> Vec<String> {
    depends
        .split(',')
        .filter_map(|item| {
            let first = item.split('|').next()?.trim();
            let name = first
                .split(|c: char| c.is_whitespace() || matches!(c, '(' | '[' | '<'))
                .next()?;
            let name = name.split(':').next()?;
            (!name.is_empty()).then(|| name.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KERNEL: &str = "\
Package: linux-image-6.1.0-56-cloud-amd64
Version: 6.1.192-2
Architecture: amd64
Depends: kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool
Description: Linux 6.1 for x86-64 cloud (signed)
 The Linux kernel 6.1 and modules for use on cloud platforms.
 .
 The kernel image and modules are signed for use with Secure Boot.
";

    #[test]
    fn parses_fields_and_continuations() {
        let c = parse(Path::new("k.deb"), KERNEL).unwrap();
        assert_eq!(c.package, "linux-image-6.1.0-56-cloud-amd64");
        assert_eq!(c.version, "6.1.192-2");
        assert_eq!(c.architecture, "amd64");
        assert_eq!(c.depends, ["kmod", "linux-base", "initramfs-tools"]);
        let description = c.field("description").unwrap();
        assert!(description.starts_with("Linux 6.1 for x86-64 cloud (signed)\nThe Linux"));
        assert_eq!(description.lines().count(), 4);
    }

    #[test]
    fn depends_drops_qualifiers_and_restrictions() {
        assert_eq!(
            first_alternatives("libc6:any (>= 2.34) [amd64], foo <!nocheck> | bar,, baz"),
            ["libc6", "foo", "baz"]
        );
        assert!(first_alternatives("").is_empty());
    }

    #[test]
    fn missing_depends_is_empty_but_missing_version_is_an_error() {
        let c = parse(
            Path::new("x.deb"),
            "Package: x\nVersion: 1\nArchitecture: all\n",
        )
        .unwrap();
        assert!(c.depends.is_empty());
        let err = parse(Path::new("x.deb"), "Package: x\nArchitecture: all\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.deb: control file has no `Version` field"
        );
    }

    #[test]
    fn malformed_lines_name_the_line() {
        let err = parse(Path::new("x.deb"), " lost\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.deb: control file line 1: continuation line before any field"
        );
        let err = parse(Path::new("x.deb"), "Package: x\nnonsense\n").unwrap_err();
        assert!(matches!(err, DebError::BadControl { line: 2, .. }), "{err}");
    }
}
