//! Bodies of the boot contract's fuzz targets, shared by `../fuzz/` (cargo-fuzz,
//! libFuzzer) and `../fuzz_smoke.rs` (a deterministic corpus in the ordinary
//! test suite). Each takes arbitrary bytes, must never panic, checks a
//! property that a wrong parser would break, and returns whether the input
//! was accepted (so the smoke test can check its valid seeds are).

use slipway_boot_contract::cmdline::{check_base, BootArgs, Cmdline};
use slipway_boot_contract::window::Window;

/// A kernel command line, as PID 1 reads it: the typed arguments, when
/// there are any, render and parse back the same; and no base that passes
/// `check_base` changes what a rendered line means.
pub fn cmdline(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let line = Cmdline::parse(&text);
    let Ok(args) = BootArgs::from_cmdline(&line) else {
        return false;
    };
    let rendered = args.render("").expect("an empty base always passes");
    assert_eq!(
        BootArgs::parse(&rendered).as_ref(),
        Ok(&args),
        "{rendered:?}"
    );
    // The input itself as a base: refused, or harmless.
    if check_base(&text).is_ok() {
        let with_base = args.render(&text).expect("checked");
        assert_eq!(
            BootArgs::parse(&with_base).as_ref(),
            Ok(&args),
            "{with_base:?}"
        );
    }
    true
}

/// A maintenance window, start and length split at the first newline: an
/// accepted window is written back the same, and its wait is within one
/// period from any time.
pub fn window(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let (start, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let (length, now) = rest.split_once('\n').unwrap_or((rest, ""));
    let Ok(w) = Window::parse(start, length) else {
        return false;
    };
    let again = Window::parse(&w.start_string(), &w.length_string());
    assert_eq!(again, Ok(w), "{start:?} {length:?}");
    let now: u64 = now
        .bytes()
        .fold(0u64, |n, b| n.wrapping_mul(31).wrapping_add(u64::from(b)));
    let week = 7 * 86_400;
    assert!(w.wait_from(now).as_secs() <= week, "{w}");
    true
}
