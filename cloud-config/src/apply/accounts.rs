//! Users and groups, by editing `/etc/passwd`, `/etc/shadow`, `/etc/group`
//! (and `/etc/gshadow` when the image has one) directly: the image has no
//! `useradd`.
//!
//! Each user (or group) is one step: the files are loaded, changed in
//! memory, and written back atomically only if the whole change succeeded;
//! a write failing half-way restores the files already replaced. Lines we
//! do not change are kept byte for byte.
//!
//! Rules for a new user:
//! - uid: `uid` if given (refused if another user has it), otherwise the
//!   lowest free uid from 1000 (system users: the highest free one below
//!   1000, from 999 down to 100);
//! - primary group: `primary_group` (must exist), else a user-private
//!   group named after the user (gid = uid when free, else the lowest free
//!   gid from 1000; an existing group of that name is reused), or with
//!   `no_user_group` the group `users` (gid 100 if there is none);
//! - supplementary `groups` must all exist, otherwise the step fails
//!   naming the missing ones and nothing is changed;
//! - shell `/bin/sh`, home `/home/<name>` created 0700 and owned by the
//!   user (not for `no_create_home` or `system` users; `/etc/skel` is not
//!   copied); a home directory that already exists is left as it is (mode
//!   and owner untouched), with a note;
//! - shadow `name:!:<days since 1970>::::::` (locked); with a `passwd`
//!   hash the hash is used instead (`lock_passwd: true` explicitly locks
//!   it with a leading `!`). `lock_passwd: false` cannot unlock anything
//!   without a hash; the step says so.
//!
//! An existing user only gets its password (and, in another step, its SSH
//! keys) applied, as coreos-cloudinit does.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::schema::{Group, User};

use super::fsops::{self, Owner};

pub(crate) const PASSWD: &str = "/etc/passwd";
pub(crate) const GROUP: &str = "/etc/group";
pub(crate) const SHADOW: &str = "/etc/shadow";
pub(crate) const GSHADOW: &str = "/etc/gshadow";

/// Groups the default user joins when the image has them (CoreOS's `core`
/// is in `wheel`, `sudo`, `docker` and `systemd-journal`).
pub(crate) const DEFAULT_USER_GROUPS: [&str; 5] =
    ["wheel", "sudo", "docker", "systemd-journal", "adm"];

/// One colon-separated database file, kept as lines.
#[derive(Debug, Clone)]
struct Table {
    path: &'static str,
    lines: Vec<String>,
    /// Where this file is missing, it is created with this mode.
    new_mode: u32,
    existed: bool,
    original: String,
    dirty: bool,
}

impl Table {
    fn load(root: &Path, path: &'static str, new_mode: u32) -> Result<Table, String> {
        let text = fsops::read_optional(&fsops::under_root(root, path))?;
        let existed = text.is_some();
        let original = text.unwrap_or_default();
        Ok(Table {
            path,
            lines: original.lines().map(String::from).collect(),
            new_mode,
            existed,
            original,
            dirty: false,
        })
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|l| !l.starts_with('#') && l.split(':').next() == Some(name))
    }

    fn field(&self, index: usize, n: usize) -> Option<&str> {
        self.lines.get(index)?.split(':').nth(n)
    }

    fn set_field(&mut self, index: usize, n: usize, value: &str) {
        let Some(line) = self.lines.get_mut(index) else {
            return;
        };
        let mut fields: Vec<String> = line.split(':').map(String::from).collect();
        while fields.len() <= n {
            fields.push(String::new());
        }
        if fields[n] != value {
            fields[n] = value.to_string();
            *line = fields.join(":");
            self.dirty = true;
        }
    }

    fn push(&mut self, line: String) {
        self.lines.push(line);
        self.dirty = true;
    }

    /// Numeric values of field `n` over all entries.
    fn numbers(&self, n: usize) -> Vec<u32> {
        self.lines
            .iter()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(':').nth(n)?.parse().ok())
            .collect()
    }

    fn text(&self) -> String {
        let mut s = self.lines.join("\n");
        if !s.is_empty() {
            s.push('\n');
        }
        s
    }

    /// Adds `member` to the member list (field `n`) of line `index`.
    fn add_member(&mut self, index: usize, n: usize, member: &str) {
        let current = self.field(index, n).unwrap_or("").to_string();
        if current.split(',').any(|m| m == member) {
            return;
        }
        let updated = if current.is_empty() {
            member.to_string()
        } else {
            format!("{current},{member}")
        };
        self.set_field(index, n, &updated);
    }
}

/// A passwd entry, as the other steps need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// The account databases of one root.
#[derive(Debug, Clone)]
pub(crate) struct Accounts {
    passwd: Table,
    group: Table,
    shadow: Table,
    gshadow: Option<Table>,
}

impl Accounts {
    pub(crate) fn load(root: &Path) -> Result<Accounts, String> {
        let gshadow = Table::load(root, GSHADOW, 0o600)?;
        Ok(Accounts {
            passwd: Table::load(root, PASSWD, 0o644)?,
            group: Table::load(root, GROUP, 0o644)?,
            shadow: Table::load(root, SHADOW, 0o600)?,
            gshadow: gshadow.existed.then_some(gshadow),
        })
    }

    pub(crate) fn user(&self, name: &str) -> Option<Account> {
        let i = self.passwd.find(name)?;
        Some(Account {
            uid: self.passwd.field(i, 2)?.parse().ok()?,
            gid: self.passwd.field(i, 3)?.parse().ok()?,
            home: self.passwd.field(i, 5)?.to_string(),
        })
    }

    pub(crate) fn group_gid(&self, name: &str) -> Option<u32> {
        let i = self.group.find(name)?;
        self.group.field(i, 2)?.parse().ok()
    }

    /// Writes the changed files: group files first, passwd last (a user
    /// "exists" once passwd names it). A failure restores what was
    /// already replaced.
    pub(crate) fn save(&self, root: &Path) -> Result<(), String> {
        let mut tables = vec![&self.group];
        tables.extend(self.gshadow.as_ref());
        tables.push(&self.shadow);
        tables.push(&self.passwd);
        let mut done: Vec<(&Table, u32, Owner)> = Vec::new();
        for t in tables.into_iter().filter(|t| t.dirty) {
            let path = fsops::under_root(root, t.path);
            let (mode, owner) = match std::fs::metadata(&path) {
                Ok(m) => (m.mode() & 0o7777, Owner::ids(m.uid(), m.gid())),
                Err(_) => (t.new_mode, Owner::default()),
            };
            if let Err(e) = fsops::write_atomic(root, &path, t.text().as_bytes(), mode, owner) {
                for (old, mode, owner) in done {
                    let old_path = fsops::under_root(root, old.path);
                    let _ = if old.existed {
                        fsops::write_atomic(root, &old_path, old.original.as_bytes(), mode, owner)
                    } else {
                        std::fs::remove_file(&old_path).map_err(|e| e.to_string())
                    };
                }
                return Err(e);
            }
            done.push((t, mode, owner));
        }
        Ok(())
    }

    fn free_id(taken: &[u32], candidates: impl Iterator<Item = u32>) -> Option<u32> {
        candidates.into_iter().find(|id| !taken.contains(id))
    }

    fn new_uid(&self, system: bool) -> Result<u32, String> {
        let taken = self.passwd.numbers(2);
        let id = if system {
            Self::free_id(&taken, (100..1000).rev())
        } else {
            Self::free_id(&taken, 1000..60000)
        };
        id.ok_or_else(|| "no free uid left".to_string())
    }

    fn new_gid(&self, system: bool, preferred: u32) -> Result<u32, String> {
        let taken = self.group.numbers(2);
        if !taken.contains(&preferred) {
            return Ok(preferred);
        }
        let id = if system {
            Self::free_id(&taken, (100..1000).rev())
        } else {
            Self::free_id(&taken, 1000..60000)
        };
        id.ok_or_else(|| "no free gid left".to_string())
    }

    fn add_group(&mut self, name: &str, gid: u32, members: &[String]) {
        let members = members.join(",");
        self.group.push(format!("{name}:x:{gid}:{members}"));
        if let Some(g) = &mut self.gshadow {
            g.push(format!("{name}:!::{members}"));
        }
    }

    fn add_to_group(&mut self, group: &str, member: &str) {
        if let Some(i) = self.group.find(group) {
            self.group.add_member(i, 3, member);
        }
        if let Some(g) = &mut self.gshadow {
            if let Some(i) = g.find(group) {
                g.add_member(i, 3, member);
            }
        }
    }
}

/// Days since 1970, for shadow's "last change" field.
fn today() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400)
}

/// Login and group names: `[a-z_][a-z0-9_-]*` (an optional final `$`),
/// at most 32 characters — what shadow-utils accepts by default.
pub(crate) fn valid_name(name: &str) -> bool {
    let body = name.strip_suffix('$').unwrap_or(name);
    let mut chars = body.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    first_ok
        && name.len() <= 32
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// A value that goes into a colon-separated field.
fn check_field(what: &str, value: &str) -> Result<(), String> {
    if value.contains([':', '\n', '\r']) {
        return Err(format!(
            "{what} {value:?} must not contain ':' or line breaks"
        ));
    }
    Ok(())
}

fn check_path(what: &str, value: &str) -> Result<(), String> {
    check_field(what, value)?;
    if !value.starts_with('/') || value.split('/').any(|c| c == "..") {
        return Err(format!(
            "{what} {value:?} must be an absolute path without \"..\""
        ));
    }
    Ok(())
}

/// What one user step did, for its log line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct UserResult {
    pub notes: Vec<String>,
}

/// Applies one `users[]` entry (or the default user) to the root.
pub(crate) fn apply_user(root: &Path, user: &User) -> Result<UserResult, String> {
    if !valid_name(&user.name) {
        return Err(format!(
            "invalid user name {:?}: use lower-case letters, digits, '_' and '-', starting with a letter or '_', at most 32 characters",
            user.name
        ));
    }
    if let Some(p) = &user.passwd {
        check_field("passwd", p)?;
    }
    for rule in &user.sudo {
        if rule.contains(['\n', '\r']) {
            return Err(format!("sudo rule {rule:?} must be a single line"));
        }
    }
    let mut accounts = Accounts::load(root)?;
    let mut result = UserResult::default();
    if accounts.passwd.find(&user.name).is_some() {
        result
            .notes
            .push("existing user: only the password and SSH keys are applied".into());
        apply_password(&mut accounts, user, false, &mut result)?;
        accounts.save(root)?;
        return Ok(result);
    }
    let created_home = create_user(root, &mut accounts, user, &mut result)?;
    if let Err(e) = accounts.save(root) {
        if let Some(home) = created_home {
            let _ = std::fs::remove_dir(home);
        }
        return Err(e);
    }
    Ok(result)
}

/// Sets the shadow entry from `passwd`/`lock_passwd`; `new` users without a
/// hash get a locked entry.
fn apply_password(
    accounts: &mut Accounts,
    user: &User,
    new: bool,
    result: &mut UserResult,
) -> Result<(), String> {
    let lock = user.lock_passwd == Some(true);
    if user.passwd.is_none() && user.lock_passwd == Some(false) {
        result.notes.push(
            "lock_passwd: false has no effect without a passwd hash; the password stays locked"
                .into(),
        );
    }
    let index = match accounts.shadow.find(&user.name) {
        Some(i) => i,
        None => {
            accounts
                .shadow
                .push(format!("{}:!:{}::::::", user.name, today()));
            accounts.shadow.lines.len() - 1
        }
    };
    let current = accounts
        .shadow
        .field(index, 1)
        .unwrap_or_default()
        .to_string();
    let wanted = match (&user.passwd, lock) {
        (Some(hash), false) => hash.clone(),
        (Some(hash), true) => format!("!{hash}"),
        (None, true) if !current.starts_with('!') => format!("!{current}"),
        (None, _) if new => "!".to_string(),
        (None, _) => current.clone(),
    };
    if wanted != current {
        accounts.shadow.set_field(index, 1, &wanted);
        accounts.shadow.set_field(index, 2, &today().to_string());
    }
    Ok(())
}

/// Adds the passwd, group and shadow entries of a new user and creates its
/// home; returns the home directory if one was created.
fn create_user(
    root: &Path,
    accounts: &mut Accounts,
    user: &User,
    result: &mut UserResult,
) -> Result<Option<std::path::PathBuf>, String> {
    let name = user.name.as_str();
    let gecos = user.gecos.as_deref().unwrap_or("");
    check_field("gecos", gecos)?;
    let shell = user.shell.as_deref().unwrap_or("/bin/sh");
    check_path("shell", shell)?;
    let default_home = format!("/home/{name}");
    let home = user.homedir.as_deref().unwrap_or(&default_home);
    check_path("homedir", home)?;

    let missing: Vec<&str> = user
        .groups
        .iter()
        .map(String::as_str)
        .filter(|g| accounts.group_gid(g).is_none() && *g != name)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "group{} {} do{} not exist; create {} with the top-level \"groups\" key or remove {} from users[].groups",
            if missing.len() == 1 { "" } else { "s" },
            missing.join(", "),
            if missing.len() == 1 { "es" } else { "" },
            if missing.len() == 1 { "it" } else { "them" },
            if missing.len() == 1 { "it" } else { "them" },
        ));
    }

    let uid = match user.uid {
        Some(uid) => {
            if let Some(other) = accounts
                .passwd
                .lines
                .iter()
                .filter(|l| !l.starts_with('#'))
                .find(|l| l.split(':').nth(2) == Some(uid.to_string().as_str()))
            {
                let other = other.split(':').next().unwrap_or("");
                return Err(format!("uid {uid} is already used by {other:?}"));
            }
            uid
        }
        None => accounts.new_uid(user.system)?,
    };
    let gid = if let Some(pg) = &user.primary_group {
        accounts
            .group_gid(pg)
            .ok_or_else(|| format!("primary_group {pg:?} does not exist"))?
    } else if !user.no_user_group {
        match accounts.group_gid(name) {
            Some(gid) => {
                result.notes.push(format!(
                    "group {name:?} already existed; used as the primary group"
                ));
                gid
            }
            None => {
                let gid = accounts.new_gid(user.system, uid)?;
                accounts.add_group(name, gid, &[]);
                gid
            }
        }
    } else {
        accounts.group_gid("users").unwrap_or(100)
    };
    for g in &user.groups {
        accounts.add_to_group(g, name);
    }
    accounts
        .passwd
        .push(format!("{name}:x:{uid}:{gid}:{gecos}:{home}:{shell}"));
    apply_password(accounts, user, true, result)?;

    if user.system || user.no_create_home {
        return Ok(None);
    }
    if let Some(problem) = crate::validate::path_problem(home) {
        return Err(format!("cannot create the home directory: {problem}"));
    }
    let home_path = fsops::under_root(root, home);
    if std::fs::symlink_metadata(&home_path).is_ok_and(|m| m.is_dir()) {
        // An existing directory (`homedir: /srv/data`, a leftover) may be
        // shared or hold someone else's files: never chmod or chown it.
        result
            .notes
            .push(format!("home {home} exists; left as it is"));
        return Ok(None);
    }
    let created = fsops::ensure_private_dir(root, &home_path, 0o700, Owner::ids(uid, gid))?;
    Ok(created.then_some(home_path))
}

/// Applies one top-level `groups[]` entry: creates the group (gid from
/// 1000) if missing and adds the members. Members need not exist yet: a
/// user created later is already in the list.
pub(crate) fn apply_group(root: &Path, group: &Group) -> Result<UserResult, String> {
    if !valid_name(&group.name) {
        return Err(format!("invalid group name {:?}", group.name));
    }
    for m in &group.members {
        if !valid_name(m) {
            return Err(format!("invalid member name {m:?}"));
        }
    }
    let mut accounts = Accounts::load(root)?;
    let mut result = UserResult::default();
    if accounts.group_gid(&group.name).is_some() {
        result.notes.push("group already existed".into());
    } else {
        let gid = accounts.new_gid(false, 1000)?;
        accounts.add_group(&group.name, gid, &[]);
    }
    for m in &group.members {
        accounts.add_to_group(&group.name, m);
    }
    accounts.save(root)?;
    Ok(result)
}

/// The default user: created with the groups from [`DEFAULT_USER_GROUPS`]
/// that the image has, like any other new user (uid from 1000).
pub(crate) fn default_user(root: &Path, name: &str) -> Result<User, String> {
    let accounts = Accounts::load(root)?;
    Ok(User {
        name: name.to_string(),
        groups: DEFAULT_USER_GROUPS
            .iter()
            .filter(|g| accounts.group_gid(g).is_some())
            .map(|g| g.to_string())
            .collect(),
        ..User::default()
    })
}

/// `/etc/sudoers.d/90-cloud-config` from `(user, rule)` pairs, mode 0440.
pub(crate) const SUDOERS: &str = "/etc/sudoers.d/90-cloud-config";

pub(crate) fn write_sudoers(root: &Path, rules: &[(String, String)]) -> Result<(), String> {
    let mut text = String::from("# Written by slipway cloud-config from users[].sudo.\n");
    for (user, rule) in rules {
        text.push_str(&format!("{user} {rule}\n"));
    }
    fsops::write_atomic(
        root,
        &fsops::under_root(root, SUDOERS),
        text.as_bytes(),
        0o440,
        Owner::ids(0, 0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("core"));
        assert!(valid_name("_svc-1"));
        assert!(valid_name("machine$"));
        assert!(!valid_name("Root"));
        assert!(!valid_name("1abc"));
        assert!(!valid_name("a:b"));
        assert!(!valid_name(""));
        assert!(!valid_name(&"a".repeat(33)));
    }

    #[test]
    fn members_are_added_once() {
        let mut t = Table {
            path: GROUP,
            lines: vec!["wheel:x:10:".into(), "docker:x:999:a".into()],
            new_mode: 0o644,
            existed: true,
            original: String::new(),
            dirty: false,
        };
        t.add_member(0, 3, "bob");
        t.add_member(0, 3, "bob");
        t.add_member(1, 3, "bob");
        assert_eq!(t.text(), "wheel:x:10:bob\ndocker:x:999:a,bob\n");
        assert!(t.dirty);
    }
}
