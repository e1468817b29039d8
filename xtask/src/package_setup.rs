//! `board/common/packages.toml`: what Debian's packaging and maintainer
//! scripts give the extra packages on an installed system (unit files,
//! update-alternatives links, system accounts, folders, enabled units),
//! declared as data and applied by the builder at build time. The file's
//! header says what each key means.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The file, relative to the boards folder.
pub const FILE: &str = "common/packages.toml";

pub fn path(boards_dir: &Path) -> PathBuf {
    boards_dir.join(FILE)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Setup {
    #[serde(default, rename = "package")]
    pub packages: BTreeMap<String, PackageSetup>,
    #[serde(default, rename = "group")]
    pub groups: Vec<Group>,
    #[serde(default, rename = "user")]
    pub users: Vec<User>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSetup {
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub leave_out: Vec<String>,
    #[serde(default)]
    pub directories: Vec<String>,
    #[serde(default)]
    pub alternatives: Vec<Alternative>,
    #[serde(default)]
    pub enable: Vec<String>,
    /// `Depends` not followed when pinning the package's closure: what
    /// only its maintainer scripts run (adduser, lsb-base).
    #[serde(default)]
    pub skip_depends: Vec<String>,
    /// `tmpfiles.d` lines (`d /var/lib/etcd 0700 etcd etcd -`): folders on
    /// `/var`, the machine's own partition, that the maintainer scripts
    /// make. Written to `usr/lib/tmpfiles.d/<package>.conf`; the init
    /// applies them at every boot (`initramfs/init/src/tmpfiles.rs`).
    #[serde(default)]
    pub tmpfiles: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alternative {
    pub name: String,
    /// The generic name (`/usr/sbin/iptables`).
    pub link: String,
    /// The chosen implementation (`/usr/sbin/iptables-nft`).
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub gecos: String,
    pub home: String,
    pub shell: String,
}

/// A symlink or folder the setup adds to the root, path relative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Made {
    Dir(String),
    Symlink { path: String, target: String },
}

impl Setup {
    pub fn load(boards_dir: &Path) -> Result<Setup> {
        let path = path(boards_dir);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("{}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Setup> {
        let setup: Setup = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
        setup.check()?;
        Ok(setup)
    }

    fn check(&self) -> Result<()> {
        // Folder → the package whose tmpfiles line makes it: a second
        // line for it would only be a warning at every boot.
        let mut tmpfiles_paths: BTreeMap<String, &str> = BTreeMap::new();
        for (name, p) in &self.packages {
            let at = |key: &str| format!("package.\"{name}\".{key}");
            for dep in &p.skip_depends {
                if !crate::board::is_package_name(dep) {
                    bail!(
                        "{}: `{dep}` is not a Debian package name",
                        at("skip_depends")
                    );
                }
            }
            for (key, list) in [
                ("files", &p.files),
                ("leave_out", &p.leave_out),
                ("directories", &p.directories),
            ] {
                for path in list {
                    check_relative(path).with_context(|| at(key))?;
                }
            }
            for a in &p.alternatives {
                if a.name.is_empty() || a.name.contains('/') {
                    bail!(
                        "{}: `{}` is not an alternative's name",
                        at("alternatives"),
                        a.name
                    );
                }
                for path in [&a.link, &a.path] {
                    if !path.starts_with('/') {
                        bail!("{}: `{path}` must be an absolute path", at("alternatives"));
                    }
                    check_relative(path.trim_start_matches('/'))
                        .with_context(|| at("alternatives"))?;
                }
            }
            if !p.tmpfiles.is_empty() && !crate::board::is_package_name(name) {
                bail!(
                    "{}: `{name}` is not a Debian package name (it names the tmpfiles.d file)",
                    at("tmpfiles")
                );
            }
            for line in &p.tmpfiles {
                let path = self
                    .check_tmpfiles_line(line)
                    .with_context(|| format!("{}: `{line}`", at("tmpfiles")))?;
                if let Some(other) = tmpfiles_paths.insert(path.clone(), name) {
                    bail!(
                        "{}: `{line}`: {path} is already a tmpfiles line of package \"{other}\"",
                        at("tmpfiles")
                    );
                }
            }
            for e in &p.enable {
                let ok = e.split_once(':').is_some_and(|(t, u)| {
                    t.contains('.') && u.contains('.') && !t.contains('/') && !u.contains('/')
                });
                if !ok {
                    bail!(
                        "{}: `{e}` is not TARGET:UNIT (sockets.target:docker.socket)",
                        at("enable")
                    );
                }
            }
        }
        let mut names = BTreeSet::new();
        let mut ids = BTreeSet::new();
        for g in &self.groups {
            check_account_name(&g.name).context("group")?;
            if !names.insert(&g.name) || !ids.insert(g.gid) {
                bail!("group `{}` ({}): name or gid given twice", g.name, g.gid);
            }
            if BASE_GROUPS
                .iter()
                .any(|(n, id)| *n == g.name || *id == g.gid)
            {
                bail!(
                    "group `{}` ({}): the builder's own groups have that name or gid",
                    g.name,
                    g.gid
                );
            }
        }
        let mut names = BTreeSet::new();
        let mut ids = BTreeSet::new();
        for u in &self.users {
            check_account_name(&u.name).context("user")?;
            if !names.insert(&u.name) || !ids.insert(u.uid) {
                bail!("user `{}` ({}): name or uid given twice", u.name, u.uid);
            }
            if BASE_USERS
                .iter()
                .any(|(n, id)| *n == u.name || *id == u.uid)
            {
                bail!(
                    "user `{}` ({}): the builder's own users have that name or uid",
                    u.name,
                    u.uid
                );
            }
            if !self.groups.iter().any(|g| g.gid == u.gid) {
                bail!("user `{}`: its gid {} is no [[group]]", u.name, u.gid);
            }
            for (key, v) in [("gecos", &u.gecos), ("home", &u.home), ("shell", &u.shell)] {
                if v.contains([':', '\n']) {
                    bail!("user `{}`: {key} must not hold `:` or a line break", u.name);
                }
            }
        }
        Ok(())
    }

    /// Checks one `tmpfiles` line against what the init applies and what
    /// the build declares; returns its folder. Only `d` lines, every field
    /// written: `d PATH MODE USER GROUP -` (an argument, which `d` does
    /// not use, may follow as `-`). The user and group must be accounts
    /// of the image: a name the machine lacks would leave the folder
    /// root's.
    fn check_tmpfiles_line(&self, line: &str) -> Result<String> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let Some(kind) = fields.first().filter(|k| **k != "d") {
            bail!("line type `{kind}`: only `d` (make a folder) is supported");
        }
        let (path, mode, user, group, age) = match fields.as_slice() {
            [_, p, m, u, g, a] | [_, p, m, u, g, a, "-"] => (*p, *m, *u, *g, *a),
            _ => bail!("not `d PATH MODE USER GROUP -` (six fields)"),
        };
        let clean = path.starts_with('/')
            && path.len() > 1
            && !path.ends_with('/')
            && path
                .split('/')
                .skip(1)
                .all(|c| !c.is_empty() && c != "." && c != "..")
            && !path.contains(['%', '"', '\'', '\\']);
        if !clean {
            bail!(
                "`{path}` must be an absolute path without `.`, `..`, `//`, a trailing `/`, \
                 quotes or specifiers"
            );
        }
        if mode.is_empty() || mode.len() > 4 || !mode.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            bail!("mode `{mode}` is not an octal mode (0700, 0755)");
        }
        let users: BTreeSet<&str> = BASE_USERS
            .iter()
            .map(|(n, _)| *n)
            .chain(self.users.iter().map(|u| u.name.as_str()))
            .collect();
        let groups: BTreeSet<&str> = BASE_GROUPS
            .iter()
            .map(|(n, _)| *n)
            .chain(self.groups.iter().map(|g| g.name.as_str()))
            .collect();
        if !users.contains(user) {
            bail!("user `{user}` is neither root nor a [[user]] of this file");
        }
        if !groups.contains(group) {
            bail!("group `{group}` is neither root nor a [[group]] of this file");
        }
        if age != "-" {
            bail!("age `{age}`: the init cleans nothing up; write `-`");
        }
        Ok(path.to_string())
    }

    /// `usr/lib/tmpfiles.d/<package>.conf` for each listed package with
    /// `tmpfiles` lines: `(path on the root, text)`, sorted by path.
    pub fn tmpfiles(&self, listed: &[String]) -> Vec<(String, String)> {
        self.for_listed(listed)
            .filter(|(_, p)| !p.tmpfiles.is_empty())
            .map(|(name, p)| {
                let mut text =
                    format!("# {name}: the folders its maintainer scripts make, from {FILE}\n");
                for line in &p.tmpfiles {
                    text.push_str(line);
                    text.push('\n');
                }
                (format!("{TMPFILES_DIR}/{name}.conf"), text)
            })
            .collect()
    }

    /// The setups of the packages a board lists, by name.
    pub fn for_listed<'a>(
        &'a self,
        listed: &'a [String],
    ) -> impl Iterator<Item = (&'a str, &'a PackageSetup)> + 'a {
        self.packages
            .iter()
            .filter(move |(name, _)| listed.contains(name))
            .map(|(n, p)| (n.as_str(), p))
    }

    /// Folders and symlinks (alternatives, enabled units) for the listed
    /// packages, sorted by path.
    pub fn made(&self, listed: &[String]) -> Vec<Made> {
        let mut out = Vec::new();
        for (_, p) in self.for_listed(listed) {
            out.extend(p.directories.iter().cloned().map(Made::Dir));
            for a in &p.alternatives {
                out.push(Made::Symlink {
                    path: a.link.trim_start_matches('/').to_string(),
                    target: format!("/etc/alternatives/{}", a.name),
                });
                out.push(Made::Symlink {
                    path: format!("etc/alternatives/{}", a.name),
                    target: a.path.clone(),
                });
            }
            for e in &p.enable {
                if let Some((target, unit)) = e.split_once(':') {
                    out.push(Made::Symlink {
                        path: format!("{UNIT_DIR}/{target}.wants/{unit}"),
                        target: format!("../{unit}"),
                    });
                }
            }
        }
        out.sort_by(|a, b| made_path(a).cmp(made_path(b)));
        out
    }

    /// `/etc/passwd`: the builder's own users, then the declared ones.
    pub fn passwd(&self) -> String {
        let mut s = String::new();
        for line in BASE_PASSWD {
            s += line;
            s.push('\n');
        }
        for u in &self.users {
            s += &format!(
                "{}:x:{}:{}:{}:{}:{}\n",
                u.name, u.uid, u.gid, u.gecos, u.home, u.shell
            );
        }
        s
    }

    /// `/etc/group`.
    pub fn group(&self) -> String {
        let mut s = String::new();
        for (name, gid) in BASE_GROUPS {
            s += &format!("{name}:x:{gid}:\n");
        }
        for g in &self.groups {
            s += &format!("{}:x:{}:\n", g.name, g.gid);
        }
        s
    }

    /// `/etc/shadow`: every password locked.
    pub fn shadow(&self) -> String {
        let mut s = String::new();
        for (name, _) in BASE_USERS {
            s += &format!("{name}:!:1::::::\n");
        }
        for u in &self.users {
            s += &format!("{}:!:1::::::\n", u.name);
        }
        s
    }
}

pub const UNIT_DIR: &str = "usr/lib/systemd/system";
/// Where the packages' `tmpfiles` lines go on the root.
pub const TMPFILES_DIR: &str = "usr/lib/tmpfiles.d";

fn made_path(m: &Made) -> &str {
    match m {
        Made::Dir(p) => p,
        Made::Symlink { path, .. } => path,
    }
}

/// The builder's own accounts. Root's password is locked; access is by
/// the serial rescue shell (and SSH keys from cloud-config).
const BASE_PASSWD: [&str; 2] = [
    "root:x:0:0:root:/root:/bin/sh",
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
];
const BASE_USERS: [(&str, u32); 2] = [("root", 0), ("nobody", 65534)];
/// Debian's numbers: devpts is mounted with gid 5 (tty); cloud-config
/// users commonly ask for wheel, adm or users.
const BASE_GROUPS: [(&str, u32); 6] = [
    ("root", 0),
    ("adm", 4),
    ("tty", 5),
    ("wheel", 10),
    ("users", 100),
    ("nogroup", 65534),
];

fn check_relative(path: &str) -> Result<()> {
    if path.is_empty()
        || path.starts_with('/')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        bail!("`{path}` must be a relative path inside the package, without `.`, `..` or `//`");
    }
    Ok(())
}

fn check_account_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c));
    if !ok {
        bail!("`{name}` is not a valid account name");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_file_loads_and_declares_the_engine() {
        let s = Setup::load(&crate::paths::boards_dir()).unwrap();
        let listed: Vec<String> = ["docker.io", "iptables", "containerd"]
            .map(String::from)
            .to_vec();
        let made = s.made(&listed);
        let link = |p: &str| {
            made.iter().find_map(|m| match m {
                Made::Symlink { path, target } if path == p => Some(target.clone()),
                _ => None,
            })
        };
        assert_eq!(
            link("usr/sbin/iptables").as_deref(),
            Some("/etc/alternatives/iptables")
        );
        assert_eq!(
            link("etc/alternatives/iptables").as_deref(),
            Some("/usr/sbin/iptables-nft")
        );
        assert_eq!(
            link("etc/alternatives/ip6tables-save").as_deref(),
            Some("/usr/sbin/ip6tables-nft-save")
        );
        assert_eq!(
            link("usr/lib/systemd/system/sockets.target.wants/docker.socket").as_deref(),
            Some("../docker.socket")
        );
        assert!(made.contains(&Made::Dir("etc/docker".into())));
        // Nothing for a package the board does not list.
        assert!(s.made(&["dropbear-bin".to_string()]).is_empty());

        assert!(s.group().contains("\ndocker:x:233:\n"), "{}", s.group());
        assert!(s
            .passwd()
            .contains("\netcd:x:232:232:etcd:/var/lib/etcd:/usr/sbin/nologin\n"));
        assert!(s.passwd().starts_with("root:x:0:0:root:/root:/bin/sh\n"));
        assert!(s.shadow().contains("\netcd:!:1::::::\n"));
        assert_eq!(s.shadow().lines().count(), s.passwd().lines().count());
    }

    #[test]
    fn etcd_servers_folder_is_a_tmpfiles_line_the_init_reads_back() {
        let s = Setup::load(&crate::paths::boards_dir()).unwrap();
        let listed: Vec<String> = ["etcd-server", "etcd-client", "docker.io"]
            .map(String::from)
            .to_vec();
        let files = s.tmpfiles(&listed);
        assert_eq!(files.len(), 1, "{files:?}");
        let (path, text) = &files[0];
        assert_eq!(path, "usr/lib/tmpfiles.d/etcd-server.conf");
        assert!(text.starts_with("# etcd-server: "), "{text}");
        // The init's own parser (what applies it at boot) finds the one
        // folder, owned by the declared account, and nothing it ignores.
        let (lines, problems) = slipway_init::tmpfiles::parse(text);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(lines.len(), 1);
        let (_, d) = &lines[0];
        assert_eq!(d.path, "/var/lib/etcd");
        assert_eq!(d.mode, 0o700);
        assert_eq!(d.user.as_deref(), Some("etcd"));
        assert_eq!(d.group.as_deref(), Some("etcd"));
        assert!(s.passwd().contains("\netcd:x:232:232:"));
        // etcd is started by user-data only: no enabled unit.
        assert!(!s.made(&listed).iter().any(|m| matches!(
            m,
            Made::Symlink { path, .. } if path.contains("etcd")
        )));
        // Nothing for a board without the package.
        assert!(s.tmpfiles(&["docker.io".to_string()]).is_empty());
    }

    #[test]
    fn tmpfiles_lines_are_checked_at_build_time() {
        let accounts = "[[group]]\nname = \"etcd\"\ngid = 232\n\
            [[user]]\nname = \"etcd\"\nuid = 232\ngid = 232\nhome = \"/\"\nshell = \"/x\"\n";
        let with = |lines: &str| format!("{accounts}[package.etcd-server]\ntmpfiles = [{lines}]\n");
        let ok = Setup::parse(&with(
            "\"d /var/lib/etcd 0700 etcd etcd -\", \"d /var/lib/x 1777 root wheel - -\"",
        ))
        .unwrap();
        assert_eq!(
            ok.tmpfiles(&["etcd-server".to_string()])[0].1,
            "# etcd-server: the folders its maintainer scripts make, from common/packages.toml\n\
             d /var/lib/etcd 0700 etcd etcd -\nd /var/lib/x 1777 root wheel - -\n"
        );
        for (lines, want) in [
            ("\"L /var/run - - - - ../run\"", "only `d`"),
            ("\"d /var/lib/etcd 0700 etcd etcd\"", "six fields"),
            ("\"d /var/lib/etcd\"", "six fields"),
            ("\"d var/lib/etcd 0700 etcd etcd -\"", "absolute path"),
            ("\"d /var/lib/../etc 0700 etcd etcd -\"", "absolute path"),
            ("\"d /var/lib/%m 0700 etcd etcd -\"", "specifiers"),
            ("\"d /var/lib/etcd 700x etcd etcd -\"", "octal mode"),
            ("\"d /var/lib/etcd - etcd etcd -\"", "octal mode"),
            ("\"d /var/lib/etcd 0700 etcdd etcd -\"", "user `etcdd`"),
            ("\"d /var/lib/etcd 0700 etcd docker -\"", "group `docker`"),
            ("\"d /var/lib/etcd 0700 232 etcd -\"", "user `232`"),
            ("\"d /var/lib/etcd 0700 etcd etcd 10d\"", "cleans nothing"),
            (
                "\"d /var/lib/etcd 0700 etcd etcd -\", \"d /var/lib/etcd 0755 root root -\"",
                "already a tmpfiles line",
            ),
        ] {
            let msg = format!("{:#}", Setup::parse(&with(lines)).unwrap_err());
            assert!(
                msg.contains("package.\"etcd-server\".tmpfiles"),
                "{lines}: {msg}"
            );
            assert!(msg.contains(want), "{lines}: {msg}");
        }
        // Load names the file too.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("common")).unwrap();
        std::fs::write(
            dir.path().join(FILE),
            with("\"f /var/lib/etcd/x 0600 etcd etcd -\""),
        )
        .unwrap();
        let msg = format!("{:#}", Setup::load(dir.path()).unwrap_err());
        assert!(msg.contains("common/packages.toml"), "{msg}");
        assert!(msg.contains("package.\"etcd-server\".tmpfiles"), "{msg}");
    }

    #[test]
    fn bad_declarations_are_refused_with_the_key() {
        for (text, want) in [
            ("[package.x]\nfiles = [\"../etc\"]\n", "package.\"x\".files"),
            ("[package.x]\nfile = []\n", "unknown field `file`"),
            (
                "[package.x]\nalternatives = [{ name = \"a\", link = \"usr/a\", path = \"/b\" }]\n",
                "absolute",
            ),
            ("[package.x]\nenable = [\"docker.socket\"]\n", "TARGET:UNIT"),
            (
                "[package.x]\nskip_depends = [\"Perl (>= 5)\"]\n",
                "skip_depends",
            ),
            (
                "[[group]]\nname = \"a\"\ngid = 9\n[[group]]\nname = \"b\"\ngid = 9\n",
                "twice",
            ),
            ("[[group]]\nname = \"tty\"\ngid = 900\n", "builder's own"),
            (
                "[[user]]\nname = \"u\"\nuid = 900\ngid = 900\nhome = \"/\"\nshell = \"/bin/sh\"\n",
                "no [[group]]",
            ),
        ] {
            let msg = format!("{:#}", Setup::parse(text).unwrap_err());
            assert!(msg.contains(want), "{text}: {msg}");
        }
    }
}
