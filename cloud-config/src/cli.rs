//! `validate-config`: the same check in `cargo xtask validate-config` on
//! the build machine and in `slipway-cloud-config validate` on the image.
//!
//! Text output is one finding per line, `FILE:LINE:COL: level: message`,
//! sorted by position (the format compilers use, so editors can jump to
//! it); `--json` prints one array with a report object per file. The exit
//! status is 1 when any file has an error (or, with `--strict`, a warning),
//! 2 when a file cannot be read, 0 otherwise.

use std::io::Write;
use std::path::PathBuf;

use crate::validate;

/// What to check and how to report.
#[derive(Debug, Clone, Default)]
pub struct ValidateArgs {
    pub files: Vec<PathBuf>,
    pub json: bool,
    pub strict: bool,
}

/// Checks every file; findings go to `out`, the one-line summary to `err`.
/// Returns the exit status.
pub fn run_validate(args: &ValidateArgs, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let mut reports = Vec::new();
    let (mut errors, mut warnings, mut unreadable) = (0usize, 0usize, 0usize);
    for path in &args.files {
        let name = path.display().to_string();
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                let _ = writeln!(err, "{name}: cannot read: {e}");
                unreadable += 1;
                continue;
            }
        };
        let report = validate(&bytes);
        errors += report
            .findings
            .iter()
            .filter(|f| f.level == crate::Level::Error)
            .count();
        warnings += report
            .findings
            .iter()
            .filter(|f| f.level == crate::Level::Warning)
            .count();
        if args.json {
            reports.push(report.to_json(&name));
        } else {
            let _ = out.write_all(report.render_text(&name).as_bytes());
        }
    }
    if args.json {
        let text = serde_json::to_string_pretty(&reports).unwrap_or_default();
        let _ = writeln!(out, "{text}");
    }
    let checked = args.files.len() - unreadable;
    let _ = writeln!(
        err,
        "checked {checked} file{}: {errors} error{}, {warnings} warning{}",
        if checked == 1 { "" } else { "s" },
        if errors == 1 { "" } else { "s" },
        if warnings == 1 { "" } else { "s" },
    );
    if unreadable > 0 {
        2
    } else if errors > 0 || (args.strict && warnings > 0) {
        1
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(files: &[(&str, &str)], json: bool, strict: bool) -> (i32, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let paths = files
            .iter()
            .map(|(name, text)| {
                let p = dir.path().join(name);
                std::fs::write(&p, text).unwrap();
                p
            })
            .collect();
        let args = ValidateArgs {
            files: paths,
            json,
            strict,
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_validate(&args, &mut out, &mut err);
        let prefix = format!("{}/", dir.path().display());
        let clean = |b: Vec<u8>| String::from_utf8(b).unwrap().replace(&prefix, "");
        (code, clean(out), clean(err))
    }

    #[test]
    fn errors_fail_warnings_pass_unless_strict() {
        let good = "#cloud-config\nhostname: box\n";
        let warn = "#cloud-config\nhostnam: box\n";
        let bad = "#cloud-config\ncoreos:\n  update:\n    reboot_strategy: always\n";
        assert_eq!(run(&[("a", good)], false, false).0, 0);
        let (code, out, err) = run(&[("a", good), ("w", warn)], false, false);
        assert_eq!(code, 0);
        assert!(
            out.starts_with("w:2:1: warning: unrecognized key \"hostnam\""),
            "{out}"
        );
        assert_eq!(err, "checked 2 files: 0 errors, 1 warning\n");
        assert_eq!(run(&[("w", warn)], false, true).0, 1);
        let (code, out, _) = run(&[("b", bad)], false, false);
        assert_eq!(code, 1);
        assert!(out.starts_with("b:4:22: error: "), "{out}");
    }

    #[test]
    fn json_is_one_array_and_unreadable_files_exit_2() {
        let (code, out, _) = run(&[("a", "#cloud-config\nhostnam: x\n")], true, false);
        assert_eq!(code, 0);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v[0]["file"], "a");
        assert_eq!(v[0]["findings"][0]["line"], 2);
        let args = ValidateArgs {
            files: vec![PathBuf::from("/nonexistent/user-data")],
            ..Default::default()
        };
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(run_validate(&args, &mut out, &mut err), 2);
        assert!(String::from_utf8(err)
            .unwrap()
            .starts_with("/nonexistent/user-data: cannot read: "));
    }
}
