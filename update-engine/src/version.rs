//! Release versions: their order, and which ones we accept.
//!
//! The order must be the boot loader's. systemd-boot (252) sorts entries
//! that share a `sort-key` by their `version` line, newest first, with
//! systemd's `strverscmp_improved()`. If the engine ordered versions any
//! other way it could install a release it thinks is newer and then watch
//! the loader boot the old slot first, or refuse a real update. So
//! [`compare`] follows that function step by step, including its odd
//! corners, rather than any "semantic versioning" idea of order.
//!
//! In short, a version is a row of segments. A segment is a run of digits
//! (compared as a number, leading zeros ignored) or a run of ASCII letters
//! (compared byte by byte, a longer run being newer when one is a prefix of
//! the other), and may be preceded by one of:
//!
//! - `~`: a pre-release. It sorts before everything, even before the end
//!   of the string: `1.0~rc1` < `1.0`.
//! - `-`: version/release separator; older than `^`, `.` or no prefix.
//! - `^`: a patched release; newer than `-`, older than `.` or no prefix.
//! - `.`: a point release; older than a segment with no prefix, so
//!   `123.a` < `123a`.
//!
//! Otherwise the string with more segments is newer: `1.0` < `1.0.0`,
//! `1.0` < `1.0a`, and `6.0` < `6.0.rc1` (only `~` makes a pre-release).
//! A numeric segment is newer than an alphabetic one in the same place.
//! Every other character (`+`, `_`, spaces, anything non-ASCII) is
//! skipped as a mere break between segments, so `1.0+3` equals `1.0_3`.
//!
//! The loader works on UTF-16 code units and systemd's tests on C strings;
//! working on UTF-8 bytes gives the same answers because every byte of a
//! non-ASCII character is skipped just as the whole character would be,
//! and where one is not skipped (see the comments in [`compare`]) all
//! that matters is that it is neither the end nor a known character.

use std::cmp::Ordering;

/// The longest version we accept, in bytes: it goes on a BLS `version`
/// line, into a `title`, and into file names, none of which should grow
/// without bound because a feed said so.
pub const MAX_LEN: usize = 64;

/// Orders two versions exactly as systemd-boot orders boot entries'
/// `version` fields (`strverscmp_improved()`): `Less` means `a` is older.
pub fn compare(a: &str, b: &str) -> Ordering {
    // The loader reads C strings: anything after a NUL does not exist.
    let a = until_nul(a.as_bytes());
    let b = until_nul(b.as_bytes());
    let (mut i, mut j) = (0, 0);
    loop {
        // Characters outside the alphabet only ever separate segments, and
        // they are dropped here, at the start of a round only: after a
        // prefix character below they are seen as an empty segment, which
        // is what makes "~_1" older than "~1" in systemd too.
        skip_ignored(a, &mut i);
        skip_ignored(b, &mut j);

        // '~' comes before the end-of-string test: a pre-release is older
        // than the bare version it precedes.
        if let Some(o) = prefix(b'~', a, &mut i, b, &mut j) {
            return o;
        }

        // One string is out of segments: the longer one is newer. Bytes
        // compare unsigned, as the loader's UTF-16 units do.
        let (ca, cb) = (at(a, i), at(b, j));
        if ca == 0 || cb == 0 {
            return ca.cmp(&cb);
        }

        // The order of these three tests is what ranks the prefixes:
        // '-' oldest, then '^', then '.', then no prefix at all.
        for sep in [b'-', b'^', b'.'] {
            if let Some(o) = prefix(sep, a, &mut i, b, &mut j) {
                return o;
            }
        }

        let (ea, eb);
        if at(a, i).is_ascii_digit() || at(b, j).is_ascii_digit() {
            ea = run_end(a, i, u8::is_ascii_digit);
            eb = run_end(b, j, u8::is_ascii_digit);
            // A number beats a non-number (an alphabetic or empty segment).
            let o = (ea != i).cmp(&(eb != j));
            if o != Ordering::Equal {
                return o;
            }
            // Numerically: without leading zeros, the longer number is the
            // larger one, and equal lengths compare digit by digit. No
            // parsing, so no overflow on absurdly long numbers.
            while at(a, i) == b'0' {
                i += 1;
            }
            while at(b, j) == b'0' {
                j += 1;
            }
            let o = (ea - i)
                .cmp(&(eb - j))
                .then_with(|| a[i..ea].cmp(&b[j..eb]));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            // Letters byte by byte (so 'Z' < 'a'); when one run is a prefix
            // of the other the longer is newer. Either run may be empty.
            ea = run_end(a, i, u8::is_ascii_alphabetic);
            eb = run_end(b, j, u8::is_ascii_alphabetic);
            let o = a[i..ea].cmp(&b[j..eb]);
            if o != Ordering::Equal {
                return o;
            }
        }
        i = ea;
        j = eb;
    }
}

/// Checks a version is one we accept in a manifest or feed: 1 to
/// [`MAX_LEN`] bytes of `[A-Za-z0-9.~^+_-]`, at least one of them a letter
/// or digit. The set keeps it safe on a BLS line, in a file name and in a
/// URL path without quoting. Note that `+` and `_` are allowed but do not
/// take part in the order (see the module documentation).
pub fn validate(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("must not be empty".into());
    }
    if let Some((at, c)) = v.char_indices().find(|&(_, c)| !allowed(c)) {
        return Err(format!(
            "character {c:?} at byte {at} is not allowed (only letters, digits and . ~ ^ + _ -)"
        ));
    }
    if v.len() > MAX_LEN {
        return Err(format!(
            "is {} bytes long, at most {MAX_LEN} are allowed",
            v.len()
        ));
    }
    // A version of separators only ("_", "...") orders like the empty
    // string: equal to every other such version, older than all others.
    if !v.bytes().any(|b| b.is_ascii_alphanumeric()) {
        return Err("must contain a letter or a digit".into());
    }
    Ok(())
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '~' | '^' | '+' | '_' | '-')
}

fn until_nul(s: &[u8]) -> &[u8] {
    s.iter().position(|&c| c == 0).map_or(s, |n| &s[..n])
}

/// The byte at `i`, or 0 past the end, like reading a C string.
fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

/// The characters `strverscmp_improved()` looks at; all else is skipped.
fn significant(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'~' | b'-' | b'^' | b'.')
}

fn skip_ignored(s: &[u8], i: &mut usize) {
    while *i < s.len() && !significant(s[*i]) {
        *i += 1;
    }
}

fn run_end(s: &[u8], mut i: usize, class: fn(&u8) -> bool) -> usize {
    while i < s.len() && class(&s[i]) {
        i += 1;
    }
    i
}

/// One prefix test: if exactly one string has `sep` here, that string is
/// the older; if both have it, both step over it and the comparison goes
/// on; if neither, nothing happens.
fn prefix(sep: u8, a: &[u8], i: &mut usize, b: &[u8], j: &mut usize) -> Option<Ordering> {
    let (ha, hb) = (at(a, *i) == sep, at(b, *j) == sep);
    if !ha && !hb {
        return None;
    }
    if ha != hb {
        // The one carrying the prefix is older.
        return Some(if ha {
            Ordering::Less
        } else {
            Ordering::Greater
        });
    }
    *i += 1;
    *j += 1;
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::{Equal, Greater, Less};

    fn sign(a: &str, b: &str) -> i32 {
        match compare(a, b) {
            Less => -1,
            Equal => 0,
            Greater => 1,
        }
    }

    /// Both directions and both self-comparisons, as systemd's
    /// `test_strverscmp_improved_newer` checks them.
    fn newer(older: &str, newer: &str) {
        assert_eq!(compare(older, newer), Less, "{older:?} < {newer:?}");
        assert_eq!(compare(newer, older), Greater, "{newer:?} > {older:?}");
        assert_eq!(compare(older, older), Equal, "{older:?}");
        assert_eq!(compare(newer, newer), Equal, "{newer:?}");
    }

    /// systemd's test list: every entry is older than every later one.
    const SYSTEMD_LADDER: &[&str] = &[
        "~1",
        "",
        "ab",
        "abb",
        "abc",
        "0001",
        "002",
        "12",
        "122",
        "122.9",
        "123~rc1",
        "123",
        "123-a",
        "123-a.1",
        "123-a1",
        "123-a1.1",
        "123-3",
        "123-3.1",
        "123^patch1",
        "123^1",
        "123.a-1",
        "123.1-1",
        "123a-1",
        "124",
    ];

    #[test]
    fn systemd_ladder() {
        for (n, a) in SYSTEMD_LADDER.iter().enumerate() {
            for b in &SYSTEMD_LADDER[n + 1..] {
                newer(a, b);
            }
        }
    }

    #[test]
    fn systemd_pairs() {
        for (o, n) in [
            ("123.45-67.88", "123.45-67.89"),
            ("123.45-67.89", "123.45-67.89a"),
            ("123.45-67.ab", "123.45-67.89"),
            ("123.45-67.9", "123.45-67.89"),
            ("123.45-67", "123.45-67.89"),
            ("123.45-66.89", "123.45-67.89"),
            ("123.45-9.99", "123.45-67.89"),
            ("123.42-99.99", "123.45-67.89"),
            ("123-99.99", "123.45-67.89"),
            // '~': pre-releases
            ("123~rc1-99.99", "123.45-67.89"),
            ("123~rc1-99.99", "123-45.67.89"),
            ("123~rc1-99.99", "123~rc2-67.89"),
            ("123~rc1-99.99", "123^aa2-67.89"),
            ("123~rc1-99.99", "123aa2-67.89"),
            // '-': version/release separator
            ("123-99.99", "123.45-67.89"),
            ("123-99.99", "123^aa2-67.89"),
            ("123-99.99", "123aa2-67.89"),
            // '^': patched releases
            ("123^45-67.89", "123.45-67.89"),
            ("123^aa1-99.99", "123^aa2-67.89"),
            ("123^aa2-67.89", "123aa2-67.89"),
            // '.': point releases
            ("123.aa2-67.89", "123aa2-67.89"),
            ("123.aa2-67.89", "123.ab2-67.89"),
        ] {
            newer(o, n);
        }
    }

    #[test]
    fn systemd_corner_cases() {
        // Characters outside the alphabet are dropped.
        assert_eq!(sign("123_aa2-67.89", "123aa+2-67.89"), 0);
        assert_eq!(sign("123.", "123"), 1); // one more segment
        assert_eq!(sign("12_3", "123"), -1); // 12 < 123
        assert_eq!(sign("12_3", "12"), 1); // 3 > ''
        assert_eq!(sign("12_3", "12.3"), 1); // no prefix > '.'
        assert_eq!(sign("123.0", "123"), 1);
        assert_eq!(sign("123_0", "123"), 1);
        assert_eq!(sign("123..0", "123.0"), -1); // '' < 0
                                                 // Empty, or ignored characters only.
        for (a, b) in [
            ("", ""),
            ("0_", "0"),
            ("_0_", "0"),
            ("_0", "0"),
            ("0", "0___"),
            ("", "_"),
            ("_", ""),
            ("_", "_"),
            ("~", "~"),
        ] {
            assert_eq!(sign(a, b), 0, "{a:?} = {b:?}");
        }
        assert_eq!(sign("", "~"), 1);
        assert_eq!(sign("~", ""), -1);
        // Non-ASCII digits are not digits.
        assert_eq!(sign("1٠١٢٣٤٥٦٧٨٩", "1"), 0);
        assert_eq!(sign("1๐๑๒๓๔๕๖๗๘๙", "1"), 0);
    }

    /// The rpmvercmp cases systemd's test suite carries over, with its
    /// expected results (several differ from rpm's own).
    #[test]
    fn systemd_rpm_cases() {
        let cases: &[(&str, &str, i32)] = &[
            ("1.0", "1.0", 0),
            ("1.0", "2.0", -1),
            ("2.0", "1.0", 1),
            ("2.0.1", "2.0.1", 0),
            ("2.0", "2.0.1", -1),
            ("2.0.1", "2.0", 1),
            ("2.0.1a", "2.0.1a", 0),
            ("2.0.1a", "2.0.1", 1),
            ("2.0.1", "2.0.1a", -1),
            ("5.5p1", "5.5p1", 0),
            ("5.5p1", "5.5p2", -1),
            ("5.5p2", "5.5p1", 1),
            ("5.5p10", "5.5p10", 0),
            ("5.5p1", "5.5p10", -1),
            ("5.5p10", "5.5p1", 1),
            ("10xyz", "10.1xyz", 1),
            ("10.1xyz", "10xyz", -1),
            ("xyz10", "xyz10", 0),
            ("xyz10", "xyz10.1", -1),
            ("xyz10.1", "xyz10", 1),
            ("xyz.4", "xyz.4", 0),
            ("xyz.4", "8", -1),
            ("8", "xyz.4", 1),
            ("xyz.4", "2", -1),
            ("2", "xyz.4", 1),
            ("5.5p2", "5.6p1", -1),
            ("5.6p1", "5.5p2", 1),
            ("5.6p1", "6.5p1", -1),
            ("6.5p1", "5.6p1", 1),
            ("6.0.rc1", "6.0", 1),
            ("6.0", "6.0.rc1", -1),
            ("10b2", "10a1", 1),
            ("10a2", "10b2", -1),
            ("1.0aa", "1.0aa", 0),
            ("1.0a", "1.0aa", -1),
            ("1.0aa", "1.0a", 1),
            ("10.0001", "10.0001", 0),
            ("10.0001", "10.1", 0),
            ("10.1", "10.0001", 0),
            ("10.0001", "10.0039", -1),
            ("10.0039", "10.0001", 1),
            ("4.999.9", "5.0", -1),
            ("5.0", "4.999.9", 1),
            ("20101121", "20101121", 0),
            ("20101121", "20101122", -1),
            ("20101122", "20101121", 1),
            ("2_0", "2_0", 0),
            ("2.0", "2_0", -1),
            ("2_0", "2.0", 1),
            ("a", "a", 0),
            ("a+", "a+", 0),
            ("a+", "a_", 0),
            ("a_", "a+", 0),
            ("+a", "+a", 0),
            ("+a", "_a", 0),
            ("_a", "+a", 0),
            ("+_", "+_", 0),
            ("_+", "+_", 0),
            ("_+", "_+", 0),
            ("+", "_", 0),
            ("_", "+", 0),
            ("1.0~rc1", "1.0~rc1", 0),
            ("1.0~rc1", "1.0", -1),
            ("1.0", "1.0~rc1", 1),
            ("1.0~rc1", "1.0~rc2", -1),
            ("1.0~rc2", "1.0~rc1", 1),
            ("1.0~rc1~git123", "1.0~rc1~git123", 0),
            ("1.0~rc1~git123", "1.0~rc1", -1),
            ("1.0~rc1", "1.0~rc1~git123", 1),
            ("1.0^", "1.0^", 0),
            ("1.0^", "1.0", 1),
            ("1.0", "1.0^", -1),
            ("1.0^git1", "1.0^git1", 0),
            ("1.0^git1", "1.0", 1),
            ("1.0", "1.0^git1", -1),
            ("1.0^git1", "1.0^git2", -1),
            ("1.0^git2", "1.0^git1", 1),
            ("1.0^git1", "1.01", -1),
            ("1.01", "1.0^git1", 1),
            ("1.0^20160101", "1.0^20160101", 0),
            ("1.0^20160101", "1.0.1", -1),
            ("1.0.1", "1.0^20160101", 1),
            ("1.0^20160101^git1", "1.0^20160101^git1", 0),
            ("1.0^20160102", "1.0^20160101^git1", 1),
            ("1.0^20160101^git1", "1.0^20160102", -1),
            ("1.0~rc1^git1", "1.0~rc1^git1", 0),
            ("1.0~rc1^git1", "1.0~rc1", 1),
            ("1.0~rc1", "1.0~rc1^git1", -1),
            ("1.0^git1~pre", "1.0^git1~pre", 0),
            ("1.0^git1", "1.0^git1~pre", 1),
            ("1.0^git1~pre", "1.0^git1", -1),
            // Oddities systemd documents as they are.
            ("1b.fc17", "1b.fc17", 0),
            ("1b.fc17", "1.fc17", 1),
            ("1.fc17", "1b.fc17", -1),
            ("1g.fc17", "1g.fc17", 0),
            ("1g.fc17", "1.fc17", 1),
            ("1.fc17", "1g.fc17", -1),
            ("1.1.α", "1.1.α", 0),
            ("1.1.α", "1.1.β", 0),
            ("1.1.β", "1.1.α", 0),
            ("1.1.αα", "1.1.α", 0),
            ("1.1.α", "1.1.ββ", 0),
            ("1.1.ββ", "1.1.αα", 0),
        ];
        for &(a, b, want) in cases {
            assert_eq!(sign(a, b), want, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn our_releases() {
        let ladder = ["0.1.0", "0.1.0.2", "0.1.0.3", "0.1.1", "0.2.0"];
        for (n, a) in ladder.iter().enumerate() {
            for b in &ladder[n + 1..] {
                newer(a, b);
            }
        }
        newer("1.0~rc1", "1.0");
        newer("1.0~rc1", "1.0~rc2");
        newer("1.0~rc2", "1.0.0");
        // systemd: more segments is newer, also when the extra one is a
        // letter run. A suffix like ".rc1" or "a" is NOT a pre-release.
        newer("1.0", "1.0a");
        newer("1.0", "1.0.0");
        newer("1.0", "1.0.rc1");
        newer("1.9", "1.10");
        newer("2024.9.1", "2024.10.0");
        assert_eq!(compare("1.01", "1.1"), Equal);
        assert_eq!(compare("1.001.0", "1.1.0"), Equal);
        // '+' and '_' are allowed in versions but invisible to the order.
        assert_eq!(compare("1.0+3", "1.0_3"), Equal);
    }

    #[test]
    fn c_string_semantics() {
        assert_eq!(compare("1.0\0junk", "1.0"), Equal);
        assert_eq!(compare("2\0", "10"), Less);
        // After a '~' an ignored character is an empty segment, not skipped.
        assert_eq!(compare("~_1", "~1"), Less);
        assert_eq!(compare("~", "~_"), Less);
        // Numbers far beyond u64 compare without parsing.
        newer(
            "99999999999999999999999999999999",
            "100000000000000000000000000000000",
        );
    }

    /// Sorting relies on a total order: check antisymmetry and
    /// transitivity over everything the tests above use.
    #[test]
    fn total_order() {
        let mut all: Vec<&str> = SYSTEMD_LADDER.to_vec();
        all.extend([
            "1.0", "1.0a", "1.0.0", "1.0~rc1", "1.0^git1", "1.0-1", "1.0_1", "1.01", "~", "_",
            "~_1", "~1", "6.0.rc1", "123..0", "a", "A", "Z", "z", "1.1.α",
        ]);
        for a in &all {
            for b in &all {
                assert_eq!(compare(a, b), compare(b, a).reverse(), "{a:?} {b:?}");
                for c in &all {
                    if compare(a, b) != Greater && compare(b, c) != Greater {
                        assert_ne!(compare(a, c), Greater, "{a:?} {b:?} {c:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn validation() {
        for ok in [
            "1",
            "0.1.0",
            "1.0~rc1",
            "2024.10.0-3",
            "1.0^git1",
            "1.0+3_x",
            "A",
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok:?}");
        }
        assert_eq!(validate(&"1".repeat(MAX_LEN)), Ok(()));
        assert_eq!(validate(""), Err("must not be empty".into()));
        let long = validate(&"1".repeat(MAX_LEN + 1)).unwrap_err();
        assert!(long.contains("65 bytes"), "{long}");
        assert_eq!(
            validate("1 0"),
            Err(
                "character ' ' at byte 1 is not allowed (only letters, digits and . ~ ^ + _ -)"
                    .into()
            )
        );
        for (bad, c) in [
            ("1/0", "'/'"),
            ("1.0\n", "'\\n'"),
            ("1.0é", "'é'"),
            ("1\0", "'\\0'"),
        ] {
            let e = validate(bad).unwrap_err();
            assert!(e.starts_with(&format!("character {c} ")), "{bad:?}: {e}");
        }
        assert!(validate("...").unwrap_err().contains("letter or a digit"));
        assert!(validate("~").is_err());
    }
}
