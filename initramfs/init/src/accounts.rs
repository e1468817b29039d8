//! The image's system accounts reach `/etc` even when the machine has its
//! own copy of the account files.
//!
//! `/etc` is an overlay: once cloud-config adds a user, the machine's
//! `/etc/passwd`, `/etc/group` and `/etc/shadow` hide the image's for good,
//! so a group a later release adds (`docker`, whose socket has
//! `SocketGroup=docker`; `etcd`, the user etcd runs as) would never appear
//! after an A/B update. At every boot stage 2 reads the image's files
//! before the overlay covers them and, once it does, appends each entry
//! whose name the machine's files lack (what systemd-sysusers does from
//! `sysusers.d`). Entries the machine has are never changed or removed.

use crate::console::say;
use crate::sys::Sys;

/// The account files, with the mode a rewrite keeps.
pub const FILES: [(&str, u32); 3] = [
    ("/etc/passwd", 0o644),
    ("/etc/group", 0o644),
    ("/etc/shadow", 0o600),
];

/// The image's account files, read before `/etc` is covered.
#[derive(Debug, Default)]
pub struct ImageAccounts {
    files: Vec<(&'static str, u32, String)>,
}

impl ImageAccounts {
    /// Reads what exists of [`FILES`]; a missing one is skipped (there
    /// is nothing of it to bring over), an unreadable one too, with a
    /// console line naming it. Regular files of at most 1 MiB only
    /// ([`Sys::read_config`]): PID 1 must not block on a FIFO put there.
    pub fn read(sys: &mut dyn Sys) -> ImageAccounts {
        let mut files = Vec::new();
        for &(path, mode) in &FILES {
            let text = match sys.read_config(path) {
                Ok(bytes) => String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string()),
                Err(e) if e.is_missing() => continue,
                Err(e) => Err(e.to_string()),
            };
            match text {
                Ok(text) => files.push((path, mode, text)),
                Err(why) => say(
                    sys,
                    &format!("slipway: the image's {path}: {why}; its accounts are not added"),
                ),
            }
        }
        ImageAccounts { files }
    }

    /// Appends the image's entries the machine's files lack; returns what
    /// it added, one `file: name` each, for the console.
    pub fn merge_into_etc(&self, sys: &mut dyn Sys) -> Result<Vec<String>, String> {
        let mut added = Vec::new();
        for (path, mode, image) in &self.files {
            let current = match sys.read_config(path) {
                Ok(current) => current,
                Err(e) if e.is_missing() => continue,
                Err(e) => {
                    say(
                        sys,
                        &format!("slipway: {path}: {e}; the image's accounts are not added to it"),
                    );
                    continue;
                }
            };
            let current = String::from_utf8_lossy(&current);
            let (merged, names) = merge(image, &current);
            if names.is_empty() {
                continue;
            }
            sys.write_file(path, merged.as_bytes(), *mode)
                .map_err(|e| format!("adding {} to {path}: {e}", names.join(", ")))?;
            added.extend(names.into_iter().map(|n| format!("{path}: {n}")));
        }
        Ok(added)
    }
}

/// The name of an account line (`name:…`); `None` for blanks and comments.
fn name(line: &str) -> Option<&str> {
    let line = line.trim_end_matches('\r');
    if line.trim().is_empty() || line.starts_with('#') {
        return None;
    }
    line.split(':').next().filter(|n| !n.is_empty())
}

/// `current` with the lines of `image` whose names it lacks appended (in
/// the image's order), and those names.
pub fn merge(image: &str, current: &str) -> (String, Vec<String>) {
    let have: std::collections::BTreeSet<&str> = current.lines().filter_map(name).collect();
    let mut out = current.to_string();
    let mut names = Vec::new();
    for line in image.lines() {
        let Some(n) = name(line) else { continue };
        if have.contains(n) || names.iter().any(|m| m == n) {
            continue;
        }
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
        names.push(n.to_string());
    }
    (out, names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::recording::RecordingSys;

    const IMAGE_GROUP: &str = "root:x:0:\nwheel:x:10:\ndocker:x:233:\netcd:x:232:\n";

    #[test]
    fn missing_groups_are_appended_and_present_ones_kept() {
        // The machine's copy from before the engine: core added, its own
        // wheel line with members.
        let machine = "root:x:0:\nwheel:x:10:core\ncore:x:500:\n";
        let (merged, names) = merge(IMAGE_GROUP, machine);
        assert_eq!(names, ["docker", "etcd"]);
        assert_eq!(
            merged,
            "root:x:0:\nwheel:x:10:core\ncore:x:500:\ndocker:x:233:\netcd:x:232:\n"
        );
        // Nothing left to add: a second boot writes nothing.
        let (again, names) = merge(IMAGE_GROUP, &merged);
        assert!(names.is_empty());
        assert_eq!(again, merged);
    }

    #[test]
    fn a_last_line_without_newline_and_comments() {
        let (merged, names) = merge("# base\nroot:x:0:\n\ndocker:x:233:\n", "root:x:0:");
        assert_eq!(names, ["docker"]);
        assert_eq!(merged, "root:x:0:\ndocker:x:233:\n");
    }

    #[test]
    fn boots_read_the_image_then_merge_into_the_overlay() {
        let mut sys = RecordingSys::new();
        sys.add_file("/etc/group", IMAGE_GROUP)
            .add_file("/etc/passwd", "root:x:0:0::/root:/bin/sh\n");
        let image = ImageAccounts::read(&mut sys);
        // The overlay now shows the machine's older copies.
        sys.add_file("/etc/group", "root:x:0:\ncore:x:500:\n")
            .add_file(
                "/etc/passwd",
                "root:x:0:0::/root:/bin/sh\ncore:x:500:500::/home/core:/bin/sh\n",
            );
        let added = image.merge_into_etc(&mut sys).unwrap();
        // wheel too: like systemd-sysusers, a base account the machine
        // lacks comes back.
        assert_eq!(
            added,
            [
                "/etc/group: wheel",
                "/etc/group: docker",
                "/etc/group: etcd"
            ]
        );
        assert_eq!(
            sys.read_file("/etc/group").unwrap(),
            b"root:x:0:\ncore:x:500:\nwheel:x:10:\ndocker:x:233:\netcd:x:232:\n"
        );
        assert_eq!(
            sys.read_file("/etc/passwd").unwrap(),
            b"root:x:0:0::/root:/bin/sh\ncore:x:500:500::/home/core:/bin/sh\n"
        );
        assert!(image.merge_into_etc(&mut sys).unwrap().is_empty());
    }

    #[test]
    fn a_fifo_as_an_account_file_does_not_block_and_is_named() {
        use crate::sys::regular::test_support::{quickly, temp_fifo};
        let (_dir, pipe) = temp_fifo();
        let (console, calls) = quickly(move || {
            let mut sys = RecordingSys::new();
            sys.add_file("/dev/console", "")
                .add_file("/etc/group", IMAGE_GROUP)
                .add_file(
                    "/etc/passwd",
                    "root:x:0:0::/root:/bin/sh\netcd:x:232:232::/var/lib/etcd:/bin/false\n",
                )
                .add_host_file("/etc/shadow", &pipe);
            let image = ImageAccounts::read(&mut sys);
            // The machine's /etc/group is a FIFO; its passwd lacks etcd.
            sys.add_host_file("/etc/group", &pipe)
                .add_file("/etc/passwd", "root:x:0:0::/root:/bin/sh\n");
            let added = image.merge_into_etc(&mut sys).unwrap();
            assert_eq!(added, ["/etc/passwd: etcd"]);
            (sys.written_to("/dev/console"), sys.calls)
        });
        assert_eq!(
            console,
            [
                "slipway: the image's /etc/shadow: a FIFO, not a regular file; \
                 its accounts are not added",
                "slipway: /etc/group: a FIFO, not a regular file; \
                 the image's accounts are not added to it",
            ]
        );
        // Nothing was written in the FIFO's place.
        assert!(!calls.iter().any(|c| c.starts_with("write_file /etc/group")));
    }
}
