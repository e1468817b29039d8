//! Loading one unit ([`load_unit`]) and a unit with everything it pulls
//! in ([`load_set`]).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::fs::{find_drop_ins, find_fragment, pulled_by, Fragment, Pull};
use super::name::UnitName;
use super::parse::Builder;
use super::{Context, Diagnostic, Level, LoadState, Unit, UnitSet};
use crate::sys::regular::read_regular;

/// Loads unit `name` from the tree at `root`: its file (or its template's),
/// its drop-ins and its `.wants/`/`.requires/` entries. Never fails: the
/// unit's [`LoadState`] and the diagnostics say what went wrong.
pub fn load_unit(root: &Path, name: &str, ctx: &Context) -> (Unit, Vec<Diagnostic>) {
    let diag = |level: Level, message: String| Diagnostic {
        unit: name.to_string(),
        file: PathBuf::from(name),
        line: None,
        level,
        message,
    };
    let parsed = match UnitName::parse(name) {
        Ok(n) => n,
        Err(e) => {
            return (
                Unit::new(name, LoadState::Error(e.clone())),
                vec![diag(Level::Error, e)],
            )
        }
    };
    if parsed.is_template() {
        let e = "a template unit cannot be loaded without an instance".to_string();
        return (
            Unit::new(name, LoadState::Error(e.clone())),
            vec![diag(Level::Error, e)],
        );
    }
    let template = parsed.template();
    let fragment = find_fragment(root, name)
        .or_else(|| template.as_deref().and_then(|t| find_fragment(root, t)));
    if let Some(Fragment::Masked { path }) = &fragment {
        let mut u = Unit::new(name, LoadState::Masked);
        u.sources.push(path.clone());
        return (u, Vec::new());
    }

    let pulled = pulled_by(root, name);

    let mut builder = Builder::new(&parsed, ctx, root);
    let mut main_file = PathBuf::from(name);
    if let Some(Fragment::File { path, host }) = &fragment {
        main_file = path.clone();
        match read_regular(host) {
            Ok(text) => builder.apply_file(path, &text),
            Err(e) => {
                let m = format!("cannot read the unit file: {e}");
                let mut u = Unit::new(name, LoadState::Error(m.clone()));
                u.sources.push(path.clone());
                let d = Diagnostic {
                    file: path.clone(),
                    ..diag(Level::Error, m)
                };
                return (u, vec![d]);
            }
        }
    }
    // Drop-ins under every name of the unit apply, as in systemd: the
    // unit's own, its template's, and its `Alias=` names' (cloud-config
    // writes `etcd2.service.d/` for Debian's `etcd.service`, whose
    // `Alias=etcd2.service` is known only once its file is read).
    let mut dirs = vec![name.to_string()];
    dirs.extend(template.clone());
    // Loaded by an alias link's name: the linked file's own name is one
    // of the unit's names too.
    if let Some(target) = super::alias_target(root, name) {
        dirs.push(target);
    }
    for alias in &builder.unit.install.alias {
        if !dirs.contains(alias) {
            dirs.push(alias.clone());
        }
    }
    let drop_ins = find_drop_ins(root, &dirs);
    let mut unreadable = Vec::new();
    for d in &drop_ins {
        match read_regular(&d.host) {
            Ok(text) => builder.apply_file(&d.path, &text),
            Err(e) => unreadable.push(Diagnostic {
                file: d.path.clone(),
                ..diag(
                    Level::Warning,
                    format!("cannot read the drop-in, ignoring: {e}"),
                )
            }),
        }
    }

    let is_target = parsed.suffix == "target";
    let empty_target = is_target && !pulled.is_empty();
    if fragment.is_none() && drop_ins.is_empty() && !empty_target {
        return (Unit::new(name, LoadState::NotFound), Vec::new());
    }
    if main_file == Path::new(name) {
        if let Some(first) = drop_ins.first() {
            main_file = first.path.clone();
        }
    }

    let (mut unit, mut diags) = builder.finish(&main_file);
    diags.extend(unreadable);
    for (dep, kind) in pulled {
        let list = match kind {
            Pull::Wants => &mut unit.wants,
            Pull::Requires => &mut unit.requires,
        };
        if !list.contains(&dep) {
            list.push(dep);
        }
    }
    if !matches!(parsed.suffix.as_str(), "service" | "target" | "socket")
        && unit.load == LoadState::Loaded
    {
        unit.load = LoadState::Unsupported;
        diags.push(Diagnostic {
            file: main_file,
            ..diag(
                Level::Warning,
                format!(
                    ".{} units are not supported, not starting it",
                    parsed.suffix
                ),
            )
        });
    }
    (unit, diags)
}

/// [`super::UnitSet::load`].
pub(crate) fn load_set(root: &Path, names: &[String], ctx: &Context) -> (UnitSet, Vec<Diagnostic>) {
    let mut set = UnitSet::default();
    let mut diags = Vec::new();
    // (name, who pulled it in: None when asked for)
    let mut queue: VecDeque<(String, Option<String>)> =
        names.iter().map(|n| (n.clone(), None)).collect();
    while let Some((name, by)) = queue.pop_front() {
        if set.contains(&name) {
            continue;
        }
        let (unit, d) = load_unit(root, &name, ctx);
        diags.extend(d);
        if unit.load == LoadState::NotFound {
            diags.push(Diagnostic {
                unit: name.clone(),
                file: PathBuf::from(&name),
                line: None,
                level: if by.is_none() {
                    Level::Error
                } else {
                    Level::Warning
                },
                message: match &by {
                    None => "unit not found".to_string(),
                    Some(b) => format!("unit not found (pulled in by {b})"),
                },
            });
        }
        if unit.load == LoadState::Loaded {
            for dep in unit.pulls() {
                if !set.contains(dep) {
                    queue.push_back((dep.clone(), Some(name.clone())));
                }
            }
        }
        set.insert(unit);
    }
    (set, diags)
}
