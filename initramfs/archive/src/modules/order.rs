//! Load order: a topological sort of the closure, smallest name first among
//! the modules that are ready, so the order is the same on every build.

use std::collections::{BTreeMap, BTreeSet};

use super::{Module, ModulesError};

/// Orders `modules` so each comes after every dependency of it that is in
/// `modules`; the others are built into the kernel and need no waiting.
pub(super) fn load_order(
    mut modules: BTreeMap<String, Module>,
) -> Result<Vec<Module>, ModulesError> {
    // Each module's dependencies not loaded yet, and the reverse edges.
    let mut waiting: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut dependents: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for module in modules.values() {
        let deps: BTreeSet<String> = module
            .depends
            .iter()
            .filter(|d| modules.contains_key(*d))
            .cloned()
            .collect();
        for dep in &deps {
            dependents
                .entry(dep.clone())
                .or_default()
                .push(module.name.clone());
        }
        waiting.insert(module.name.clone(), deps);
    }

    let mut ready: BTreeSet<String> = waiting
        .iter()
        .filter(|(_, deps)| deps.is_empty())
        .map(|(name, _)| name.clone())
        .collect();
    let mut ordered = Vec::with_capacity(modules.len());
    while let Some(name) = ready.pop_first() {
        for dependent in dependents.get(&name).into_iter().flatten() {
            if let Some(deps) = waiting.get_mut(dependent) {
                deps.remove(&name);
                if deps.is_empty() {
                    ready.insert(dependent.clone());
                }
            }
        }
        waiting.remove(&name);
        ordered.extend(modules.remove(&name));
    }
    if waiting.is_empty() {
        Ok(ordered)
    } else {
        Err(ModulesError::Cycle {
            cycle: find_cycle(&waiting),
        })
    }
}

/// Every module left waiting waits on another one left waiting, so walking
/// from the smallest along smallest dependencies must come back round.
fn find_cycle(waiting: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut path: Vec<&String> = Vec::new();
    let mut next = waiting.keys().next();
    while let Some(current) = next {
        if let Some(start) = path.iter().position(|m| *m == current) {
            path.push(current);
            return path[start..].iter().map(|m| m.to_string()).collect();
        }
        path.push(current);
        next = waiting.get(current).and_then(|deps| deps.first());
    }
    // Unreachable while the invariant above holds; the walk is still the
    // best description of what is stuck.
    path.into_iter().cloned().collect()
}
