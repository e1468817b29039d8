//! `tmpfiles.d`: the folders on `/var` that the image's packages need,
//! made at every boot.
//!
//! Debian's maintainer scripts make some folders at install time
//! (etcd-server's postinst: `mkdir -p -m 700 /var/lib/etcd`). Here nothing
//! runs at install time, and `/var` is the machine's own partition: not
//! in the image, and already there on a machine that updates to a release
//! with a new package. So the builder writes what the scripts would have
//! made as `tmpfiles.d` lines (`usr/lib/tmpfiles.d/<package>.conf`, from
//! `board/common/packages.toml`), and stage 2 applies them at every boot,
//! after the image's accounts are merged into `/etc` and before
//! cloud-config runs, as `systemd-tmpfiles --create --boot` does.
//!
//! What is applied, as systemd-tmpfiles does it:
//! - The `*.conf` files of `/etc/tmpfiles.d` and `/usr/lib/tmpfiles.d`; a
//!   file in `/etc` masks the one of the same name in `/usr/lib` (an empty
//!   one or a link to `/dev/null` turns it off). Files go in name order,
//!   whichever folder they are in.
//! - `d PATH MODE USER GROUP AGE ARGUMENT` lines (fields after the path
//!   may be left out, `-` means the default: mode 0755, user and group
//!   root). The folder and its missing parents (0755, root) are made, and
//!   the folder gets the mode and owner even when it already existed.
//!   Users and groups are names in `/etc/passwd` and `/etc/group`, or
//!   numbers. The `!` (boot only) and `-` (errors ignored) modifiers are
//!   accepted: this runs only at boot, and nothing here stops it.
//! - Only regular files of at most 1 MiB are read, links followed
//!   ([`Sys::read_config`]): a FIFO put in `/etc/tmpfiles.d` or at
//!   `/etc/group` is refused, never waited on, with a warning naming it.
//! - A path configured twice: the first line (by file name, then line)
//!   wins, the later ones are ignored with a warning.
//!
//! Not supported, each a console warning naming `file:line` and the line
//! ignored: other line types (`D`, `L`, `f`, …), specifiers (`%`),
//! quoting, and paths that are not absolute or contain `.` or `..`. An
//! age is not acted on (no clean-up runs): the folder is still made, with
//! a warning. Nothing here is fatal and nothing panics: PID 1 reports and
//! boots on.

use std::collections::BTreeMap;

use crate::console::say;
use crate::error::{chain, errno_text};
use crate::state::create_dirs;
use crate::sys::Sys;

/// The folders read, the one that masks the other first.
pub const DIRS: [&str; 2] = ["/etc/tmpfiles.d", "/usr/lib/tmpfiles.d"];

/// The mode of a `d` line whose mode is `-`.
pub const DEFAULT_DIR_MODE: u32 = 0o755;

/// One `d` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirLine {
    /// Absolute, without `.`, `..`, empty components or a trailing `/`.
    pub path: String,
    pub mode: u32,
    /// A name or a number; `None` is root.
    pub user: Option<String>,
    pub group: Option<String>,
    /// The age field when it is not `-` (not acted on).
    pub age: Option<String>,
}

/// Parses one line: `Ok(None)` for blanks and comments, `Err` with the
/// reason for a line that is ignored.
pub fn parse_line(line: &str) -> Result<Option<DirLine>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let mut fields = line.split_whitespace();
    let kind = fields.next().unwrap_or_default();
    let modifiers = kind.get(1..).unwrap_or_default();
    if !kind.starts_with('d') || modifiers.contains(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!("line type `{kind}` is not supported (only `d`)"));
    }
    if let Some(m) = modifiers.chars().find(|c| !matches!(c, '!' | '-')) {
        return Err(format!(
            "line type `{kind}`: the modifier `{m}` is not supported (only `!` and `-`)"
        ));
    }
    let path = fields.next().ok_or("`d` line without a path")?;
    let path = check_path(path)?;
    let field = |f: Option<&str>| f.filter(|v| *v != "-").map(str::to_string);
    let mode = match field(fields.next()) {
        None => DEFAULT_DIR_MODE,
        Some(m) => parse_mode(&m)?,
    };
    let user = field(fields.next());
    let group = field(fields.next());
    for (what, v) in [("user", &user), ("group", &group)] {
        if let Some(v) = v {
            check_account(what, v)?;
        }
    }
    let age = field(fields.next());
    // The argument (the rest of the line) means nothing for `d`.
    Ok(Some(DirLine {
        path,
        mode,
        user,
        group,
        age,
    }))
}

/// The `d` lines of one file with their line numbers, and the ignored
/// lines with their line numbers and reasons.
pub type Parsed = (Vec<(usize, DirLine)>, Vec<(usize, String)>);

/// Parses a whole file (what the builder checks its own files with, too).
pub fn parse(text: &str) -> Parsed {
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        match parse_line(line) {
            Ok(Some(d)) => lines.push((i + 1, d)),
            Ok(None) => {}
            Err(why) => problems.push((i + 1, why)),
        }
    }
    (lines, problems)
}

fn check_path(path: &str) -> Result<String, String> {
    if path.contains(['"', '\'', '\\']) {
        return Err(format!("`{path}`: quoting and escapes are not supported"));
    }
    if path.contains('%') {
        return Err(format!("`{path}`: specifiers (`%`) are not supported"));
    }
    if !path.starts_with('/') {
        return Err(format!("`{path}` is not an absolute path"));
    }
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if parts.iter().any(|c| *c == "." || *c == "..") {
        return Err(format!("`{path}` must not contain `.` or `..`"));
    }
    Ok(format!("/{}", parts.join("/")))
}

fn parse_mode(text: &str) -> Result<u32, String> {
    let ok =
        !text.is_empty() && text.len() <= 4 && text.bytes().all(|b| (b'0'..=b'7').contains(&b));
    match u32::from_str_radix(text, 8) {
        Ok(mode) if ok => Ok(mode),
        _ => Err(format!("mode `{text}` is not an octal mode (0700, 1777)")),
    }
}

fn check_account(what: &str, name: &str) -> Result<(), String> {
    if name.contains([':', '/']) {
        return Err(format!("{what} `{name}` is not an account name"));
    }
    Ok(())
}

/// Name → ID from `/etc/passwd` or `/etc/group` text (field 3).
fn ids(text: &str) -> BTreeMap<String, u32> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next().filter(|n| !n.is_empty())?;
            let id = f.nth(1)?.trim().parse().ok()?;
            Some((name.to_string(), id))
        })
        .collect()
}

/// The accounts lines name, read once per boot.
struct Accounts {
    users: BTreeMap<String, u32>,
    groups: BTreeMap<String, u32>,
}

impl Accounts {
    /// A file that cannot be read names no account (a console line says
    /// why, unless it is missing); a FIFO there is refused, not waited on.
    fn read(sys: &mut dyn Sys) -> Accounts {
        let mut text = |p: &str| match sys.read_config(p) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => {
                if !e.is_missing() {
                    say(
                        sys,
                        &format!("slipway: {p}: {e}; the names in it are not known"),
                    );
                }
                String::new()
            }
        };
        Accounts {
            users: ids(&text("/etc/passwd")),
            groups: ids(&text("/etc/group")),
        }
    }

    /// A number as is, else the name's ID; `None` (root) for no name.
    fn resolve(
        map: &BTreeMap<String, u32>,
        name: Option<&str>,
        what: &str,
        file: &str,
    ) -> Result<u32, String> {
        let Some(name) = name else { return Ok(0) };
        match name.parse::<u32>() {
            // (uid_t)-1 is chown(2)'s "leave it as it is".
            Ok(u32::MAX) => return Err(format!("{what} {name} is not a valid ID")),
            Ok(id) => return Ok(id),
            Err(_) => {}
        }
        map.get(name)
            .copied()
            .ok_or_else(|| format!("no {what} `{name}` in {file}"))
    }
}

/// The configuration files, in the order they are applied: one path per
/// file name, `/etc`'s over `/usr/lib`'s, sorted by name. Masked ones
/// (links to `/dev/null`) are left out.
pub fn config_files(sys: &mut dyn Sys) -> Vec<String> {
    let mut by_name: BTreeMap<String, String> = BTreeMap::new();
    for dir in DIRS {
        let Ok(names) = sys.read_dir(dir) else {
            continue;
        };
        for name in names.into_iter().filter(|n| n.ends_with(".conf")) {
            let path = format!("{dir}/{name}");
            by_name.entry(name).or_insert(path);
        }
    }
    by_name
        .into_values()
        .filter(|p| sys.read_link(p).map_or(true, |t| t != "/dev/null"))
        .collect()
}

/// Applies every `d` line; problems go to the console.
pub fn apply(sys: &mut dyn Sys) {
    let files = config_files(sys);
    if files.is_empty() {
        return;
    }
    let accounts = Accounts::read(sys);
    // Path → the `file:line` that configured it.
    let mut first: BTreeMap<String, String> = BTreeMap::new();
    for file in files {
        // Regular files of at most 1 MiB: PID 1 must not block on a FIFO.
        let text = match sys.read_config(&file) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(why) => {
                say(sys, &format!("slipway: {file}: {why}, ignoring it"));
                continue;
            }
        };
        for (i, text) in text.lines().enumerate() {
            let at = format!("{file}:{}", i + 1);
            let line = match parse_line(text) {
                Ok(Some(line)) => line,
                Ok(None) => continue,
                Err(why) => {
                    say(sys, &format!("slipway: {at}: {why}, ignoring the line"));
                    continue;
                }
            };
            if let Some(earlier) = first.get(&line.path) {
                say(
                    sys,
                    &format!(
                        "slipway: {at}: {} is already configured by {earlier}, ignoring the line",
                        line.path
                    ),
                );
                continue;
            }
            first.insert(line.path.clone(), at.clone());
            if let Some(age) = &line.age {
                say(
                    sys,
                    &format!(
                        "slipway: {at}: age {age}: nothing is cleaned up here; {} is made without it",
                        line.path
                    ),
                );
            }
            if let Err(why) = make_dir(sys, &accounts, &line) {
                say(sys, &format!("slipway: {at}: {why}"));
            }
        }
    }
}

fn make_dir(sys: &mut dyn Sys, accounts: &Accounts, line: &DirLine) -> Result<(), String> {
    let uid = Accounts::resolve(&accounts.users, line.user.as_deref(), "user", "/etc/passwd")?;
    let gid = Accounts::resolve(
        &accounts.groups,
        line.group.as_deref(),
        "group",
        "/etc/group",
    )?;
    let path = &line.path;
    create_dirs(sys, path, line.mode).map_err(|e| chain(&e))?;
    sys.set_dir_mode_owner(path, line.mode, uid, gid)
        .map_err(|errno| match errno {
            nix::errno::Errno::ENOTDIR | nix::errno::Errno::ELOOP => {
                format!("{path} is a file or a symbolic link, not a folder; left alone")
            }
            _ => format!(
                "setting {path} to mode {:04o}, owner {uid}:{gid}: {}",
                line.mode,
                errno_text(errno)
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::recording::RecordingSys;
    use nix::errno::Errno;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        etcd:x:232:232:etcd:/var/lib/etcd:/usr/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:\netcd:x:232:\n";

    fn machine() -> RecordingSys {
        let mut sys = RecordingSys::new();
        sys.add_file("/etc/passwd", PASSWD)
            .add_file("/etc/group", GROUP)
            .add_file("/dev/console", "")
            .add_dir("/var/lib/slipway");
        sys
    }

    fn dir(path: &str, mode: u32, user: Option<&str>, group: Option<&str>) -> DirLine {
        DirLine {
            path: path.into(),
            mode,
            user: user.map(Into::into),
            group: group.map(Into::into),
            age: None,
        }
    }

    #[test]
    fn d_lines_with_defaults_and_left_out_fields() {
        assert_eq!(
            parse_line("d /var/lib/etcd 0700 etcd etcd -"),
            Ok(Some(dir(
                "/var/lib/etcd",
                0o700,
                Some("etcd"),
                Some("etcd")
            )))
        );
        assert_eq!(
            parse_line("  d\t/var/x/  -  -  -  -  ignored argument"),
            Ok(Some(dir("/var/x", 0o755, None, None)))
        );
        assert_eq!(
            parse_line("d /var/x"),
            Ok(Some(dir("/var/x", 0o755, None, None)))
        );
        assert_eq!(
            parse_line("d! //var//tmp2 1777 0 100"),
            Ok(Some(dir("/var/tmp2", 0o1777, Some("0"), Some("100"))))
        );
        let aged = parse_line("d /var/cache/x 0755 - - 10d").unwrap().unwrap();
        assert_eq!(aged.age.as_deref(), Some("10d"));
        for blank in ["", "   ", "# d /nope", "\t# comment"] {
            assert_eq!(parse_line(blank), Ok(None), "{blank:?}");
        }
    }

    #[test]
    fn other_types_and_malformed_lines_say_why() {
        for (line, why) in [
            (
                "L /var/run - - - - ../run",
                "line type `L` is not supported",
            ),
            ("D /var/tmp 1777", "line type `D` is not supported"),
            ("f /var/x 0644", "line type `f` is not supported"),
            ("d= /var/x", "the modifier `=` is not supported"),
            ("dir /var/x", "line type `dir` is not supported"),
            ("d", "without a path"),
            ("d var/lib/x", "not an absolute path"),
            ("d /var/lib/../../etc", "must not contain `.` or `..`"),
            ("d /var/./x", "must not contain"),
            ("d /var/%m", "specifiers"),
            ("d \"/var/a b\"", "quoting"),
            ("d /var/x 755x", "not an octal mode"),
            ("d /var/x 0800", "not an octal mode"),
            ("d /var/x 17777", "not an octal mode"),
            ("d /var/x ~0755", "not an octal mode"),
            ("d /var/x 0755 a:b", "not an account name"),
        ] {
            let got = parse_line(line).unwrap_err();
            assert!(got.contains(why), "{line}: {got}");
        }
    }

    #[test]
    fn etc_masks_usr_lib_and_files_go_in_name_order() {
        let mut sys = machine();
        sys.add_file("/usr/lib/tmpfiles.d/b.conf", "d /var/b\n")
            .add_file("/usr/lib/tmpfiles.d/c.conf", "d /var/c-image\n")
            .add_file("/usr/lib/tmpfiles.d/d.conf", "d /var/d\n")
            .add_file("/usr/lib/tmpfiles.d/README", "d /var/readme\n")
            .add_file("/etc/tmpfiles.d/a.conf", "d /var/a\n")
            .add_file("/etc/tmpfiles.d/c.conf", "d /var/c-machine\n")
            .add_link("/etc/tmpfiles.d/d.conf", "/dev/null");
        assert_eq!(
            config_files(&mut sys),
            [
                "/etc/tmpfiles.d/a.conf",
                "/usr/lib/tmpfiles.d/b.conf",
                "/etc/tmpfiles.d/c.conf",
            ]
        );
        apply(&mut sys);
        let made: Vec<&String> = sys
            .calls
            .iter()
            .filter(|c| c.starts_with("mkdir"))
            .collect();
        assert_eq!(
            made,
            [
                "mkdir /var/a 0755",
                "mkdir /var/b 0755",
                "mkdir /var/c-machine 0755"
            ]
        );
        assert!(sys.written_to("/dev/console").is_empty());
    }

    #[test]
    fn makes_the_folder_and_parents_then_sets_mode_and_owner() {
        let mut sys = machine();
        sys.add_file(
            "/usr/lib/tmpfiles.d/etcd-server.conf",
            "# etcd-server\nd /var/lib/etcd 0700 etcd etcd -\n",
        );
        apply(&mut sys);
        assert_eq!(
            sys.calls,
            [
                "mkdir /var/lib/etcd 0700",
                "set_dir_mode_owner /var/lib/etcd 0700 232:232",
            ]
        );
        // Missing parents are made 0755; numbers need no account.
        let mut sys = machine();
        sys.add_file("/etc/tmpfiles.d/x.conf", "d /srv/a/b 0750 0 wheel\n");
        apply(&mut sys);
        assert_eq!(
            sys.calls,
            [
                "mkdir /srv 0755",
                "mkdir /srv/a 0755",
                "mkdir /srv/a/b 0750",
                "set_dir_mode_owner /srv/a/b 0750 0:10",
            ]
        );
    }

    #[test]
    fn an_existing_folder_gets_its_mode_and_owner_fixed() {
        let mut sys = machine();
        sys.add_dir("/var/lib/etcd").add_file(
            "/usr/lib/tmpfiles.d/etcd-server.conf",
            "d /var/lib/etcd 0700 etcd etcd -\n",
        );
        apply(&mut sys);
        assert_eq!(sys.calls, ["set_dir_mode_owner /var/lib/etcd 0700 232:232"]);
    }

    #[test]
    fn problems_are_warnings_naming_file_and_line_and_the_rest_applies() {
        let mut sys = machine();
        sys.add_file("/var/file", "not a folder")
            .add_link("/var/link", "/etc")
            .add_file(
                "/usr/lib/tmpfiles.d/mixed.conf",
                "L /var/run - - - - ../run\n\
                 d /var/lib/x 0700 nosuchuser -\n\
                 d /var/lib/y 0700 - nosuchgroup\n\
                 d relative\n\
                 d /var/file 0700\n\
                 d /var/link 0700\n\
                 d /var/cache/z 0755 - - 10d\n\
                 d /var/lib/ok 0711\n\
                 d /var/lib/ok 0700 etcd\n\
                 d /var/lib/max 0700 4294967295\n",
            )
            .fail("mkdir /var/lib/bad 0755", Errno::EROFS)
            .add_file("/etc/tmpfiles.d/z.conf", "d /var/lib/bad\n");
        apply(&mut sys);
        let f = "/usr/lib/tmpfiles.d/mixed.conf";
        assert_eq!(
            sys.written_to("/dev/console"),
            [
                format!("slipway: {f}:1: line type `L` is not supported (only `d`), ignoring the line"),
                format!("slipway: {f}:2: no user `nosuchuser` in /etc/passwd"),
                format!("slipway: {f}:3: no group `nosuchgroup` in /etc/group"),
                format!("slipway: {f}:4: `relative` is not an absolute path, ignoring the line"),
                format!("slipway: {f}:5: /var/file is a file or a symbolic link, not a folder; left alone"),
                format!("slipway: {f}:6: /var/link is a file or a symbolic link, not a folder; left alone"),
                format!("slipway: {f}:7: age 10d: nothing is cleaned up here; /var/cache/z is made without it"),
                format!("slipway: {f}:9: /var/lib/ok is already configured by {f}:8, ignoring the line"),
                format!("slipway: {f}:10: user 4294967295 is not a valid ID"),
                "slipway: /etc/tmpfiles.d/z.conf:1: creating /var/lib/bad: Read-only file system".to_string(),
            ]
        );
        // Nothing was made for the refused lines; the good ones were.
        assert!(!sys
            .calls
            .iter()
            .any(|c| c.contains("/var/lib/x") || c.contains("/var/lib/y")));
        assert!(sys
            .calls
            .contains(&"set_dir_mode_owner /var/cache/z 0755 0:0".to_string()));
        assert!(sys
            .calls
            .contains(&"set_dir_mode_owner /var/lib/ok 0711 0:0".to_string()));
        assert!(!sys.calls.iter().any(|c| c.contains("/var/lib/ok 0700")));
    }

    #[test]
    fn unreadable_files_and_missing_folders_are_not_fatal() {
        // No tmpfiles.d at all: nothing happens, nothing is said.
        let mut sys = machine();
        apply(&mut sys);
        assert!(sys.calls.is_empty());
        // A folder where a file should be.
        let mut sys = machine();
        sys.add_dir("/etc/tmpfiles.d/odd.conf")
            .add_file("/usr/lib/tmpfiles.d/odd.conf", "d /var/odd\n");
        apply(&mut sys);
        assert_eq!(
            sys.written_to("/dev/console"),
            ["slipway: /etc/tmpfiles.d/odd.conf: a directory, not a regular file, ignoring it"]
        );
        // No account files (a broken /etc): root lines still apply.
        let mut sys = RecordingSys::new();
        sys.add_file(
            "/usr/lib/tmpfiles.d/a.conf",
            "d /var/a\nd /var/b 0700 etcd\n",
        )
        .add_file("/dev/console", "");
        apply(&mut sys);
        assert!(sys
            .calls
            .contains(&"set_dir_mode_owner /var/a 0755 0:0".to_string()));
        assert_eq!(
            sys.written_to("/dev/console"),
            ["slipway: /usr/lib/tmpfiles.d/a.conf:2: no user `etcd` in /etc/passwd"]
        );
    }

    #[test]
    fn a_fifo_as_a_file_or_as_etc_group_does_not_block_and_is_named() {
        use crate::sys::regular::test_support::{quickly, temp_fifo};
        let (_dir, pipe) = temp_fifo();
        let (console, calls) = quickly(move || {
            let mut sys = machine();
            let big = vec![b'#'; usize::try_from(crate::sys::MAX_FILE).unwrap() + 1];
            sys.add_host_file("/etc/group", &pipe)
                .add_host_file("/etc/tmpfiles.d/a-pipe.conf", &pipe)
                .add_file("/etc/tmpfiles.d/b-big.conf", big)
                .add_file(
                    "/usr/lib/tmpfiles.d/etcd.conf",
                    "d /var/lib/etcd 0700 etcd etcd\nd /var/lib/b 0700 etcd\n",
                );
            apply(&mut sys);
            (sys.written_to("/dev/console"), sys.calls)
        });
        assert_eq!(
            console,
            [
                "slipway: /etc/group: a FIFO, not a regular file; the names in it are not known",
                "slipway: /etc/tmpfiles.d/a-pipe.conf: a FIFO, not a regular file, ignoring it",
                "slipway: /etc/tmpfiles.d/b-big.conf: larger than 1024 KiB, the most PID 1 \
                 reads of a configuration file, ignoring it",
                "slipway: /usr/lib/tmpfiles.d/etcd.conf:1: no group `etcd` in /etc/group",
            ]
        );
        // The next line, needing no group, still applies.
        assert!(calls.contains(&"set_dir_mode_owner /var/lib/b 0700 232:0".to_string()));
    }

    #[test]
    fn a_whole_file_gives_lines_and_problems_with_numbers() {
        let (lines, problems) = parse("# x\nd /var/a\n\nL /var/b\nd /var/c 0700 etcd etcd -\n");
        assert_eq!(
            lines,
            [
                (2, dir("/var/a", 0o755, None, None)),
                (5, dir("/var/c", 0o700, Some("etcd"), Some("etcd")))
            ]
        );
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, 4);
    }

    #[test]
    fn account_ids_come_from_the_third_field() {
        let users = ids("# c\nroot:x:0:0::/:/bin/sh\nbad\nodd:x:nope:1\netcd:x:232:232::/:/x\n");
        assert_eq!(users.get("root"), Some(&0));
        assert_eq!(users.get("etcd"), Some(&232));
        assert_eq!(users.len(), 2);
    }
}
