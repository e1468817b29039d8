//! `ExecStart=` and friends: command lines, their prefixes, `PATH`
//! lookup, and `$VAR` expansion.

use std::collections::BTreeMap;
use std::path::Path;

use super::fs::{resolve, Resolved};
use super::words::split_words;
use crate::units::env::valid_name;

/// The search path for programs given without a `/`, and the services'
/// default `PATH`: systemd's fixed one (≥ 239) plus `/opt/bin`, where
/// Container Linux users install their own tools (the root is read-only).
pub const EXEC_SEARCH_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/bin";

/// Privileges a command runs with, from its `+`, `!` or `!!` prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Privilege {
    /// No prefix: `User=`, `Group=` and the other restrictions apply.
    #[default]
    Normal,
    /// `+`: full privileges, `User=`/`Group=` ignored.
    Full,
    /// `!`: `User=`/`Group=` not applied, other sandboxing applies.
    NoSetuid,
    /// `!!`: like `!` (systemd only differs on systems without ambient
    /// capabilities).
    AmbientFallback,
}

/// One command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCommand {
    /// The program: absolute, either as written or found in
    /// [`EXEC_SEARCH_PATH`] under the root at load time. Specifiers are
    /// expanded; `$VAR`s are not (the path never has them expanded).
    pub path: String,
    /// The raw arguments, `argv[0]` included (the program as written, or
    /// the word after it with `@`); specifiers are expanded, `$VAR`s are
    /// left for [`expand`] at start time.
    pub argv: Vec<String>,
    /// `-`: a non-zero exit or a signal is recorded but not a failure.
    pub ignore_failure: bool,
    /// `:`: no `$VAR` expansion; run `argv` as is.
    pub no_env_expand: bool,
    /// `+`, `!`, `!!`.
    pub privilege: Privilege,
}

impl ExecCommand {
    /// The arguments with environment variables expanded (unless the
    /// command has the `:` prefix).
    pub fn expanded_argv(&self, env: &BTreeMap<String, String>) -> Vec<String> {
        if self.no_env_expand {
            self.argv.clone()
        } else {
            expand(&self.argv, env)
        }
    }
}

/// Parses one `Exec*=` value (specifiers already expanded) into command
/// lines: several are separated by a lone `;` word (`\;` is a literal
/// `;` argument). Returns an error for the whole line when it cannot be
/// used.
pub(crate) fn parse_exec(value: &str, root: &Path) -> Result<Vec<ExecCommand>, String> {
    let words = split_words(value)?;
    let mut commands = Vec::new();
    let mut current: Vec<String> = Vec::new();
    for word in words {
        match word.as_str() {
            ";" => {
                if !current.is_empty() {
                    commands.push(command(std::mem::take(&mut current), root)?);
                }
            }
            "\\;" => current.push(";".to_string()),
            _ => current.push(word),
        }
    }
    if !current.is_empty() {
        commands.push(command(current, root)?);
    }
    if commands.is_empty() {
        return Err("empty command line".to_string());
    }
    Ok(commands)
}

fn command(words: Vec<String>, root: &Path) -> Result<ExecCommand, String> {
    let mut words = words.into_iter();
    let first = words.next().ok_or("empty command line")?;
    let mut cmd = ExecCommand {
        path: String::new(),
        argv: Vec::new(),
        ignore_failure: false,
        no_env_expand: false,
        privilege: Privilege::Normal,
    };
    let mut separate_argv0 = false;
    let mut rest = first.as_str();
    loop {
        let (flag, after) = if let Some(a) = rest.strip_prefix("!!") {
            ("!!", a)
        } else if let Some(a) = rest.strip_prefix(['-', '@', ':', '+', '!']) {
            (rest.get(..1).unwrap_or_default(), a)
        } else {
            break;
        };
        let dup = || {
            format!("prefix {flag:?} given twice or combined with an incompatible one in {first:?}")
        };
        match flag {
            "-" if !cmd.ignore_failure => cmd.ignore_failure = true,
            "@" if !separate_argv0 => separate_argv0 = true,
            ":" if !cmd.no_env_expand => cmd.no_env_expand = true,
            "+" if cmd.privilege == Privilege::Normal => cmd.privilege = Privilege::Full,
            "!" if cmd.privilege == Privilege::Normal => cmd.privilege = Privilege::NoSetuid,
            "!!" if cmd.privilege == Privilege::Normal => {
                cmd.privilege = Privilege::AmbientFallback
            }
            _ => return Err(dup()),
        }
        rest = after;
    }
    if rest.is_empty() {
        return Err(format!("no program in {first:?}"));
    }
    let program = rest.to_string();
    cmd.path = if program.starts_with('/') {
        program.clone()
    } else if program.contains('/') {
        return Err(format!(
            "{program:?} is neither a valid executable name nor an absolute path"
        ));
    } else {
        search_path(root, &program)
            .ok_or_else(|| format!("executable {program:?} not found in {EXEC_SEARCH_PATH}"))?
    };
    if separate_argv0 {
        cmd.argv = words.collect();
        if cmd.argv.is_empty() {
            return Err(format!("'@' prefix given but no argv[0] after {first:?}"));
        }
    } else {
        cmd.argv = std::iter::once(program).chain(words).collect();
    }
    Ok(cmd)
}

/// The first `<dir>/<name>` in [`EXEC_SEARCH_PATH`] that is a file under
/// `root`, as a path on the target system.
pub(crate) fn search_path(root: &Path, name: &str) -> Option<String> {
    EXEC_SEARCH_PATH
        .split(':')
        .map(|dir| format!("{dir}/{name}"))
        .find(|p| matches!(resolve(root, Path::new(p)), Resolved::Found(h) if h.is_file()))
}

/// systemd's expansion of environment variables in command arguments: a
/// word that is exactly `$NAME` is replaced by the variable's value split
/// at whitespace (zero words when unset or empty); `${NAME}` anywhere in a
/// word is replaced by the value as is (empty when unset), keeping one
/// word; `$$` is a literal `$`. Other `$`s are left alone.
pub fn expand(words: &[String], env: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::with_capacity(words.len());
    for word in words {
        if let Some(name) = word.strip_prefix('$').filter(|n| valid_name(n)) {
            if let Some(v) = env.get(name) {
                out.extend(v.split_whitespace().map(str::to_string));
            }
            continue;
        }
        out.push(expand_in_word(word, env));
    }
    out
}

fn expand_in_word(word: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(pos) = rest.find('$') {
        let (before, from_dollar) = rest.split_at_checked(pos).unwrap_or((rest, ""));
        out.push_str(before);
        let after = from_dollar.get(1..).unwrap_or_default();
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some((name, a)) = after
            .strip_prefix('{')
            .and_then(|b| b.split_once('}'))
            .filter(|(n, _)| valid_name(n))
        {
            out.push_str(env.get(name).map(String::as_str).unwrap_or_default());
            rest = a;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn one(value: &str) -> ExecCommand {
        let mut v = parse_exec(value, Path::new("/nonexistent-root")).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    #[test]
    fn quoting_and_escapes() {
        let c = one(r#"/bin/sh -c "echo \"hi there\"; exit 0" 'it''s' a\tb"#);
        assert_eq!(c.path, "/bin/sh");
        assert_eq!(
            c.argv,
            s(&["/bin/sh", "-c", "echo \"hi there\"; exit 0", "its", "a\tb"])
        );
        assert!(!c.ignore_failure);
    }

    #[test]
    fn prefixes() {
        let c = one("-@/usr/bin/daemon mydaemon --flag");
        assert!(c.ignore_failure);
        assert_eq!(c.path, "/usr/bin/daemon");
        assert_eq!(c.argv, s(&["mydaemon", "--flag"]));
        let c = one("+:/bin/x $A");
        assert_eq!(c.privilege, Privilege::Full);
        assert!(c.no_env_expand);
        assert_eq!(one("!!/bin/x").privilege, Privilege::AmbientFallback);
        assert_eq!(one("!-/bin/x").privilege, Privilege::NoSetuid);
        let root = Path::new("/nonexistent-root");
        assert!(parse_exec("--/bin/x", root)
            .unwrap_err()
            .contains("given twice"));
        assert!(parse_exec("+!/bin/x", root).is_err());
        assert!(parse_exec("@/bin/x", root).unwrap_err().contains("argv[0]"));
        assert!(parse_exec("-", root).unwrap_err().contains("no program"));
        assert!(parse_exec("bin/x", root).unwrap_err().contains("neither"));
        assert!(parse_exec("", root).is_err());
    }

    #[test]
    fn semicolons_separate_commands() {
        let v = parse_exec(r"/bin/a 1 ; /bin/b \; ;", Path::new("/x")).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].argv, s(&["/bin/a", "1"]));
        assert_eq!(v[1].argv, s(&["/bin/b", ";"]));
    }

    #[test]
    fn path_lookup_under_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("usr/bin")).unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("usr/bin/tool"), "").unwrap();
        std::fs::write(dir.path().join("bin/tool"), "").unwrap();
        std::fs::create_dir(dir.path().join("usr/sbin")).unwrap();
        // A directory named like the program is not a match.
        std::fs::create_dir(dir.path().join("usr/sbin/tool")).unwrap();
        let v = parse_exec("tool arg", dir.path()).unwrap();
        assert_eq!(v[0].path, "/usr/bin/tool");
        assert_eq!(v[0].argv, s(&["tool", "arg"]));
        let e = parse_exec("missing", dir.path()).unwrap_err();
        assert!(e.contains("not found"), "{e}");
    }

    #[test]
    fn expansion() {
        let env: BTreeMap<String, String> = [("A", "one two"), ("B", "x"), ("E", "")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let words = s(&[
            "/bin/p",
            "$A",
            "${A}",
            "pre${B}post",
            "$B",
            "$UNSET",
            "${UNSET}",
            "$$A",
            "a$B",
            "$E",
            "cost: 5$",
            "${bad-name}",
        ]);
        assert_eq!(
            expand(&words, &env),
            s(&[
                "/bin/p",
                "one",
                "two",
                "one two",
                "prexpost",
                "x",
                "",
                "$A",
                "a$B",
                "cost: 5$",
                "${bad-name}"
            ])
        );
        let c = one(":/bin/x $A");
        assert_eq!(c.expanded_argv(&env), s(&["/bin/x", "$A"]));
        let c = one("/bin/x $A");
        assert_eq!(c.expanded_argv(&env), s(&["/bin/x", "one", "two"]));
    }
}
