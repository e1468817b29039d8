//! Start order: batches of units that can start in parallel.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::{LoadState, UnitSet};

/// An ordering cycle (`After=`/`Before=`); none of its units is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    /// The units of the cycle in order, starting with the smallest name;
    /// each one is ordered before the next, the last before the first.
    pub units: Vec<String>,
}

impl fmt::Display for Cycle {
    /// `ordering cycle: a.service → b.service → a.service`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ordering cycle: {}", self.units.join(" → "))?;
        if let Some(first) = self.units.first() {
            write!(f, " → {first}")?;
        }
        Ok(())
    }
}

/// A unit that will not be started, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub unit: String,
    pub reason: String,
}

/// The result of [`start_order`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartOrder {
    /// Each batch can start in parallel once the previous one has
    /// started; names are sorted within a batch.
    pub batches: Vec<Vec<String>>,
    /// Ordering cycles; their units are in no batch.
    pub cycles: Vec<Cycle>,
    /// Units not loaded ([`LoadState`] other than `Loaded`), and units
    /// that `Requires=` a unit that is not started (cycle members
    /// included); in name order.
    pub skipped: Vec<Skipped>,
}

/// Orders the units of `set`: `A After=B` (or `B Before=A`) puts `A` in
/// a later batch than `B` when both are started. `Requires=`/`Wants=` only
/// matter for what is in the set (and for skipping a unit whose required
/// unit is not started).
pub fn start_order(set: &UnitSet) -> StartOrder {
    let mut out = StartOrder::default();
    let mut excluded: BTreeMap<String, String> = BTreeMap::new();
    for u in set.iter() {
        let why = match &u.load {
            LoadState::Loaded => continue,
            LoadState::Masked => "masked".to_string(),
            LoadState::NotFound => "not found".to_string(),
            LoadState::Unsupported => "unit type not supported".to_string(),
            LoadState::Error(e) => format!("bad unit: {e}"),
        };
        excluded.insert(u.name.clone(), why);
    }

    // Ordering edges among loaded units: before → after.
    let nodes: BTreeSet<&str> = set
        .iter()
        .filter(|u| u.load == LoadState::Loaded)
        .map(|u| u.name.as_str())
        .collect();
    let mut edges: BTreeMap<&str, BTreeSet<&str>> =
        nodes.iter().map(|n| (*n, BTreeSet::new())).collect();
    for u in set.iter().filter(|u| nodes.contains(u.name.as_str())) {
        for a in &u.after {
            if let Some(e) = edges.get_mut(a.as_str()) {
                e.insert(u.name.as_str());
            }
        }
        if let Some(e) = edges.get_mut(u.name.as_str()) {
            for b in &u.before {
                if let Some(b) = nodes.get(b.as_str()) {
                    e.insert(b);
                }
            }
        }
    }

    for scc in strongly_connected(&nodes, &edges) {
        let self_loop = scc
            .first()
            .is_some_and(|n| edges.get(n).is_some_and(|e| e.contains(n)));
        if scc.len() < 2 && !self_loop {
            continue;
        }
        let cycle = cycle_path(&scc, &edges);
        for n in &scc {
            excluded.insert(
                n.to_string(),
                format!(
                    "in an {}",
                    Cycle {
                        units: cycle.clone()
                    }
                ),
            );
        }
        out.cycles.push(Cycle { units: cycle });
    }
    out.cycles.sort_by(|a, b| a.units.cmp(&b.units));

    // Units requiring an excluded unit are excluded, transitively.
    loop {
        let mut more = Vec::new();
        for u in set.iter() {
            if excluded.contains_key(&u.name) {
                continue;
            }
            if let Some(r) = u
                .requires
                .iter()
                .find(|r| excluded.contains_key(r.as_str()) || set.get(r).is_none())
            {
                more.push((
                    u.name.clone(),
                    format!("requires {r}, which is not started"),
                ));
            }
        }
        if more.is_empty() {
            break;
        }
        excluded.extend(more);
    }

    // Kahn's algorithm in layers over what is left.
    let mut indegree: BTreeMap<&str, usize> = nodes
        .iter()
        .filter(|n| !excluded.contains_key(**n))
        .map(|n| (*n, 0))
        .collect();
    for (from, tos) in &edges {
        if !indegree.contains_key(from) {
            continue;
        }
        for to in tos {
            if let Some(d) = indegree.get_mut(to) {
                *d += 1;
            }
        }
    }
    while !indegree.is_empty() {
        let batch: Vec<&str> = indegree
            .iter()
            .filter(|(_, d)| **d == 0)
            .map(|(n, _)| *n)
            .collect();
        if batch.is_empty() {
            // Cannot happen (cycles were removed); never loop forever.
            for n in indegree.keys() {
                excluded.insert(n.to_string(), "ordering could not be resolved".to_string());
            }
            break;
        }
        for n in &batch {
            indegree.remove(n);
            for to in edges.get(n).into_iter().flatten() {
                if let Some(d) = indegree.get_mut(to) {
                    *d = d.saturating_sub(1);
                }
            }
        }
        out.batches
            .push(batch.into_iter().map(str::to_string).collect());
    }
    out.skipped = excluded
        .into_iter()
        .map(|(unit, reason)| Skipped { unit, reason })
        .collect();
    out
}

/// Tarjan's algorithm, iteratively; components come out with sorted
/// members.
fn strongly_connected<'a>(
    nodes: &BTreeSet<&'a str>,
    edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
) -> Vec<Vec<&'a str>> {
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut low: BTreeMap<&str, usize> = BTreeMap::new();
    let mut on_stack: BTreeSet<&str> = BTreeSet::new();
    let mut stack: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    let mut next = 0;
    for &start in nodes {
        if index.contains_key(start) {
            continue;
        }
        // (node, its successors not yet visited)
        let mut work: Vec<(&str, Vec<&str>)> = Vec::new();
        let succ = |n: &str| -> Vec<&'a str> {
            edges
                .get(n)
                .map(|e| e.iter().rev().copied().collect())
                .unwrap_or_default()
        };
        index.insert(start, next);
        low.insert(start, next);
        next += 1;
        stack.push(start);
        on_stack.insert(start);
        work.push((start, succ(start)));
        while let Some((v, mut todo)) = work.pop() {
            if let Some(w) = todo.pop() {
                work.push((v, todo));
                if !index.contains_key(w) {
                    index.insert(w, next);
                    low.insert(w, next);
                    next += 1;
                    stack.push(w);
                    on_stack.insert(w);
                    work.push((w, succ(w)));
                } else if on_stack.contains(w) {
                    let lw = index.get(w).copied().unwrap_or(usize::MAX);
                    if let Some(lv) = low.get_mut(v) {
                        *lv = (*lv).min(lw);
                    }
                }
                continue;
            }
            // v is done.
            let lv = low.get(v).copied().unwrap_or(usize::MAX);
            if let Some((parent, _)) = work.last() {
                if let Some(lp) = low.get_mut(parent) {
                    *lp = (*lp).min(lv);
                }
            }
            if index.get(v).copied() == Some(lv) {
                let mut comp = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack.remove(w);
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                comp.sort_unstable();
                out.push(comp);
            }
        }
    }
    out
}

/// A cycle through the smallest member of a strongly connected
/// component (breadth first, so a shortest one), as names.
fn cycle_path(scc: &[&str], edges: &BTreeMap<&str, BTreeSet<&str>>) -> Vec<String> {
    let members: BTreeSet<&str> = scc.iter().copied().collect();
    let Some(&start) = scc.first() else {
        return Vec::new();
    };
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    let mut last = None;
    'bfs: while let Some(v) = queue.pop_front() {
        for &w in edges.get(v).into_iter().flatten() {
            if !members.contains(w) {
                continue;
            }
            if w == start {
                last = Some(v);
                break 'bfs;
            }
            if !parent.contains_key(w) {
                parent.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    let mut path = Vec::new();
    let mut cur = last;
    while let Some(c) = cur {
        path.push(c.to_string());
        if c == start {
            break;
        }
        cur = parent.get(c).copied();
    }
    path.reverse();
    if path.is_empty() {
        // Not reachable for a real component; name the members instead.
        path = scc.iter().map(|s| s.to_string()).collect();
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::Unit;

    fn unit(name: &str, after: &[&str], before: &[&str], requires: &[&str]) -> Unit {
        let mut u = Unit::new(name, LoadState::Loaded);
        u.after = after.iter().map(|s| s.to_string()).collect();
        u.before = before.iter().map(|s| s.to_string()).collect();
        u.requires = requires.iter().map(|s| s.to_string()).collect();
        u
    }

    fn batches(o: &StartOrder) -> Vec<Vec<&str>> {
        o.batches
            .iter()
            .map(|b| b.iter().map(String::as_str).collect())
            .collect()
    }

    #[test]
    fn layers_from_after_and_before() {
        let set = UnitSet::from_units([
            unit("a.service", &[], &[], &[]),
            unit("b.service", &["a.service"], &[], &[]),
            unit("c.service", &[], &["b.service"], &[]),
            unit("d.service", &["b.service", "missing.service"], &[], &[]),
            unit("e.service", &[], &[], &[]),
        ]);
        let o = start_order(&set);
        assert_eq!(
            batches(&o),
            [
                vec!["a.service", "c.service", "e.service"],
                vec!["b.service"],
                vec!["d.service"]
            ]
        );
        assert!(o.cycles.is_empty());
        assert!(o.skipped.is_empty());
    }

    #[test]
    fn cycle_reported_rest_started() {
        let set = UnitSet::from_units([
            unit("a.service", &["b.service"], &[], &[]),
            unit("b.service", &["a.service"], &[], &[]),
            unit("c.service", &[], &[], &[]),
            unit("d.service", &["c.service"], &[], &["b.service"]),
            unit("e.service", &["a.service"], &[], &[]),
            unit("s.service", &["s.service"], &[], &[]),
        ]);
        let o = start_order(&set);
        assert_eq!(batches(&o), [vec!["c.service", "e.service"]]);
        assert_eq!(o.cycles.len(), 2);
        assert_eq!(o.cycles[0].units, ["a.service", "b.service"]);
        assert_eq!(
            o.cycles[0].to_string(),
            "ordering cycle: a.service → b.service → a.service"
        );
        assert_eq!(o.cycles[1].units, ["s.service"]);
        let skipped: Vec<&str> = o.skipped.iter().map(|s| s.unit.as_str()).collect();
        assert_eq!(
            skipped,
            ["a.service", "b.service", "d.service", "s.service"]
        );
        assert_eq!(
            o.skipped[2].reason,
            "requires b.service, which is not started"
        );
    }

    #[test]
    fn longer_cycle_path_in_order() {
        let set = UnitSet::from_units([
            unit("a.service", &["c.service"], &[], &[]),
            unit("b.service", &["a.service"], &[], &[]),
            unit("c.service", &["b.service"], &[], &[]),
        ]);
        let o = start_order(&set);
        assert!(o.batches.is_empty());
        // a before b (b After a), b before c, c before a.
        assert_eq!(o.cycles[0].units, ["a.service", "b.service", "c.service"]);
    }

    #[test]
    fn unloaded_units_skip_their_requirers() {
        let set = UnitSet::from_units([
            Unit::new("m.service", LoadState::Masked),
            Unit::new("bad.service", LoadState::Error("no ExecStart".into())),
            unit("x.service", &[], &[], &["m.service"]),
            unit("y.service", &[], &[], &["x.service"]),
            unit("z.service", &["m.service"], &[], &[]),
            unit("w.service", &[], &[], &["notinset.service"]),
        ]);
        let o = start_order(&set);
        assert_eq!(batches(&o), [vec!["z.service"]]);
        let reasons: BTreeMap<&str, &str> = o
            .skipped
            .iter()
            .map(|s| (s.unit.as_str(), s.reason.as_str()))
            .collect();
        assert_eq!(reasons["m.service"], "masked");
        assert_eq!(reasons["bad.service"], "bad unit: no ExecStart");
        assert_eq!(
            reasons["x.service"],
            "requires m.service, which is not started"
        );
        assert_eq!(
            reasons["y.service"],
            "requires x.service, which is not started"
        );
        assert!(reasons.contains_key("w.service"));
    }
}
