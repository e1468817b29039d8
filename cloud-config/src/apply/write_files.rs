//! `write_files`: each entry is one step. Paths are checked with
//! [`crate::validate::path_problem`] (the read-only root is refused), the
//! content decoded, and the file replaced atomically (temporary file in the
//! same directory, fsync, chmod, chown, rename; parents created 0755), or
//! appended to with `append: true`.
//!
//! `owner` is `user`, `user:group`, `user:` (the user's login group),
//! `:group`, or numeric ids, resolved against the root's passwd and group
//! (so users created by this run can own files). Without a group only the
//! uid changes, like chown(1); without `owner` the file keeps the writer's
//! ids (root on the machine).

use std::collections::BTreeMap;
use std::path::Path;

use crate::schema::WriteFile;

use super::accounts::Accounts;
use super::fsops::{self, Owner};

/// Writes one file. `failed_users` maps users whose step failed to that
/// step's name, so a file owned by one fails with a clear reason.
pub(crate) fn write(
    root: &Path,
    file: &WriteFile,
    failed_users: &BTreeMap<String, String>,
) -> Result<(), String> {
    if let Some(problem) = crate::validate::path_problem(&file.path) {
        return Err(problem);
    }
    let mode = file.mode().ok_or_else(|| {
        format!(
            "invalid permissions {:?}: expected an octal mode such as \"0644\"",
            file.permissions.as_deref().unwrap_or("")
        )
    })?;
    let content = file.decoded_content()?;
    let owner = match &file.owner {
        Some(owner) => resolve_owner(root, owner, failed_users)?,
        None => Owner::default(),
    };
    let path = fsops::under_root(root, &file.path);
    if file.append {
        fsops::append(root, &path, &content, mode, owner)
    } else {
        fsops::write_atomic(root, &path, &content, mode, owner)
    }
}

fn resolve_owner(
    root: &Path,
    owner: &str,
    failed_users: &BTreeMap<String, String>,
) -> Result<Owner, String> {
    let accounts = Accounts::load(root)?;
    let (user, group) = match owner.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (owner, None),
    };
    let mut out = Owner::default();
    let mut login_gid = None;
    if !user.is_empty() {
        if let Ok(uid) = user.parse::<u32>() {
            out.uid = Some(uid);
        } else if let Some(account) = accounts.user(user) {
            out.uid = Some(account.uid);
            login_gid = Some(account.gid);
        } else if let Some(step) = failed_users.get(user) {
            return Err(format!(
                "owner {user:?} was not created (step \"{step}\" failed)"
            ));
        } else {
            return Err(format!("owner: no user {user:?} in /etc/passwd"));
        }
    }
    match group {
        None => {}
        Some("") => {
            out.gid = Some(login_gid.ok_or_else(|| {
                format!("owner {owner:?}: \"user:\" needs a user name from /etc/passwd")
            })?);
        }
        Some(g) => {
            out.gid = Some(match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => accounts
                    .group_gid(g)
                    .ok_or_else(|| format!("owner: no group {g:?} in /etc/group"))?,
            });
        }
    }
    Ok(out)
}
