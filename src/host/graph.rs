//! The services as a dependency graph: the order the engine follows, checked
//! once at `build()`.
//!
//! - **Order**: a topological order that keeps registration order wherever
//!   the dependencies allow: services are visited in registration order, and
//!   a service's dependencies (themselves in registration order) are placed
//!   just before it. With no dependencies it is the registration order (.NET's).
//!   Stops run it backwards.
//! - **Checks** (each a [`BuildError`]): an unknown dependency, a
//!   self-dependency, a cycle (printed `a → b → a`), and a plan whose longest
//!   chain of per-service budgets that must run one after another exceeds the
//!   host-wide budget.
//!
//! Everything here is linear in nodes + edges: an iterative depth-first
//! search (no recursion, so a 10,000-deep chain cannot overflow the stack),
//! and one pass over the order for the longest chain.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::build_error::BuildError;

/// The dependency graph of a host's services, by index in registration order.
#[derive(Debug)]
pub(crate) struct Graph {
    /// Start order (topological); stops use it reversed.
    pub(crate) order: Box<[usize]>,
    /// Who each service depends on.
    deps: Adjacency,
    /// Who depends on each service.
    dependents: Adjacency,
    /// Whether any service has a dependency (else phases need no bookkeeping).
    pub(crate) has_edges: bool,
}

/// Edges as one flat list with offsets (compressed rows): two allocations
/// for the whole graph, none per service, four bytes per edge. Empty when
/// the graph has no edge.
#[derive(Debug, Default)]
struct Adjacency {
    /// `targets[offsets[i]..offsets[i + 1]]` are `i`'s edges.
    offsets: Vec<u32>,
    targets: Vec<u32>,
}

impl Adjacency {
    fn from_lists(lists: &[Vec<usize>]) -> Adjacency {
        let mut offsets = Vec::with_capacity(lists.len() + 1);
        let mut targets = Vec::with_capacity(lists.iter().map(Vec::len).sum());
        offsets.push(0);
        for list in lists {
            targets.extend(list.iter().map(|&t| t as u32));
            offsets.push(targets.len() as u32);
        }
        Adjacency { offsets, targets }
    }

    fn of(&self, i: usize) -> &[u32] {
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => &self.targets[a as usize..b as usize],
            _ => &[],
        }
    }
}

/// What the graph needs of one service.
pub(crate) struct Node<'a> {
    pub(crate) name: &'a str,
    pub(crate) depends_on: &'a [String],
}

impl Graph {
    /// The graph of `n` services without dependencies: registration order.
    pub(crate) fn without_edges(n: usize) -> Graph {
        Graph {
            order: (0..n).collect(),
            deps: Adjacency::default(),
            dependents: Adjacency::default(),
            has_edges: false,
        }
    }

    /// The services `i` depends on.
    pub(crate) fn deps(&self, i: usize) -> &[u32] {
        self.deps.of(i)
    }

    /// The services that depend on `i`.
    pub(crate) fn dependents(&self, i: usize) -> &[u32] {
        self.dependents.of(i)
    }

    /// Resolves names, checks for cycles, and computes the order.
    pub(crate) fn build(nodes: &[Node<'_>]) -> Result<Graph, BuildError> {
        let index: HashMap<&str, usize> =
            nodes.iter().enumerate().map(|(i, n)| (n.name, i)).collect();
        let mut deps = Vec::with_capacity(nodes.len());
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        let mut has_edges = false;
        for (i, node) in nodes.iter().enumerate() {
            let mut mine = Vec::with_capacity(node.depends_on.len());
            for dep in node.depends_on {
                let Some(&d) = index.get(dep.as_str()) else {
                    let names: Vec<&str> = nodes
                        .iter()
                        .map(|n| n.name)
                        .filter(|&n| n != node.name)
                        .collect();
                    return Err(BuildError::UnknownDependency {
                        service: Arc::from(node.name),
                        dependency: Arc::from(dep.as_str()),
                        suggestion: crate::config::closest(dep, &names).map(Arc::from),
                    });
                };
                if d == i {
                    return Err(BuildError::SelfDependency(Arc::from(node.name)));
                }
                if !mine.contains(&d) {
                    mine.push(d);
                    dependents[d].push(i);
                    has_edges = true;
                }
            }
            // Registration order among a service's dependencies.
            mine.sort_unstable();
            deps.push(mine);
        }
        let order = topological(&deps, nodes)?;
        Ok(Graph {
            order,
            deps: Adjacency::from_lists(&deps),
            dependents: Adjacency::from_lists(&dependents),
            has_edges,
        })
    }

    /// The longest chain of `budget`s that must run one after another: every
    /// service when `sequential`, else the heaviest dependency path. Returns
    /// the chain (in start order) and its sum (saturating). Services without
    /// a budget weigh nothing.
    pub(crate) fn longest_chain(
        &self,
        budget: impl Fn(usize) -> Option<Duration>,
        sequential: bool,
    ) -> (Vec<usize>, Duration) {
        let weight = |i| budget(i).unwrap_or(Duration::ZERO);
        if sequential {
            let chain: Vec<usize> = self
                .order
                .iter()
                .copied()
                .filter(|&i| budget(i).is_some())
                .collect();
            let sum = chain
                .iter()
                .fold(Duration::ZERO, |s, &i| s.saturating_add(weight(i)));
            return (chain, sum);
        }
        // Heaviest path ending at each node, in topological order.
        let n = self.order.len();
        let mut best = vec![Duration::ZERO; n];
        let mut prev = vec![usize::MAX; n];
        for &i in self.order.iter() {
            let (from, base) = self
                .deps(i)
                .iter()
                .map(|&d| (d as usize, best[d as usize]))
                .max_by_key(|&(_, b)| b)
                .unwrap_or((usize::MAX, Duration::ZERO));
            best[i] = base.saturating_add(weight(i));
            prev[i] = from;
        }
        let Some(mut at) = (0..n).max_by_key(|&i| best[i]) else {
            return (Vec::new(), Duration::ZERO);
        };
        let sum = best[at];
        let mut chain = Vec::new();
        while at != usize::MAX {
            if budget(at).is_some() {
                chain.push(at);
            }
            at = prev[at];
        }
        chain.reverse();
        (chain, sum)
    }
}

/// Depth-first, iterative: services in registration order, each preceded by
/// its not-yet-placed dependencies. A dependency met again while still on the
/// path is a cycle.
fn topological(deps: &[Vec<usize>], nodes: &[Node<'_>]) -> Result<Box<[usize]>, BuildError> {
    const NEW: u8 = 0;
    const ON_PATH: u8 = 1;
    const PLACED: u8 = 2;
    let n = deps.len();
    let mut mark = vec![NEW; n];
    let mut order = Vec::with_capacity(n);
    // (node, next dependency to look at)
    let mut path: Vec<(usize, usize)> = Vec::new();
    for root in 0..n {
        if mark[root] != NEW {
            continue;
        }
        mark[root] = ON_PATH;
        path.push((root, 0));
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            if let Some(&dep) = deps[node].get(*next) {
                *next += 1;
                match mark[dep] {
                    NEW => {
                        mark[dep] = ON_PATH;
                        path.push((dep, 0));
                    }
                    ON_PATH => {
                        let from = path.iter().position(|&(p, _)| p == dep).unwrap_or(0);
                        let mut names: Vec<Arc<str>> = path[from..]
                            .iter()
                            .map(|&(p, _)| Arc::from(nodes[p].name))
                            .collect();
                        names.push(Arc::from(nodes[dep].name));
                        return Err(BuildError::Cycle(names));
                    }
                    _ => {}
                }
            } else {
                mark[node] = PLACED;
                order.push(node);
                path.pop();
            }
        }
    }
    Ok(order.into_boxed_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(spec: &[(&str, &[&str])]) -> Result<Graph, BuildError> {
        let deps: Vec<Vec<String>> = spec
            .iter()
            .map(|(_, d)| d.iter().map(|s| s.to_string()).collect())
            .collect();
        let nodes: Vec<Node<'_>> = spec
            .iter()
            .zip(&deps)
            .map(|((name, _), d)| Node {
                name,
                depends_on: d,
            })
            .collect();
        Graph::build(&nodes)
    }

    #[test]
    fn no_dependencies_keeps_registration_order() {
        let g = graph(&[("a", &[]), ("b", &[]), ("c", &[])]).unwrap();
        assert_eq!(&*g.order, &[0, 1, 2]);
        assert!(!g.has_edges);
    }

    #[test]
    fn a_dependency_is_placed_just_before_its_first_dependent() {
        let g = graph(&[("a", &["c"]), ("b", &[]), ("c", &[])]).unwrap();
        assert_eq!(&*g.order, &[2, 0, 1]);
    }

    #[test]
    fn cycle_is_named_in_order() {
        let err = graph(&[("a", &["b"]), ("b", &["a"])]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "services depend on each other in a cycle: a → b → a"
        );
    }

    #[test]
    fn deep_chain_does_not_recurse() {
        let names: Vec<String> = (0..100_000).map(|i| format!("s{i}")).collect();
        let deps: Vec<Vec<String>> = (0..100_000)
            .map(|i| {
                if i == 0 {
                    vec![]
                } else {
                    vec![names[i - 1].clone()]
                }
            })
            .rev()
            .collect();
        let nodes: Vec<Node<'_>> = names
            .iter()
            .rev()
            .zip(&deps)
            .map(|(name, d)| Node {
                name,
                depends_on: d,
            })
            .collect();
        let g = Graph::build(&nodes).unwrap();
        assert_eq!(g.order[0], 99_999);
        assert_eq!(g.order[99_999], 0);
    }

    #[test]
    fn longest_chain_sequential_sums_everyone_concurrent_follows_paths() {
        let g = graph(&[("db", &[]), ("cache", &[]), ("web", &["db", "cache"])]).unwrap();
        let budgets = [
            Some(Duration::from_secs(3)),
            Some(Duration::from_secs(1)),
            Some(Duration::from_secs(2)),
        ];
        let (chain, sum) = g.longest_chain(|i| budgets[i], true);
        assert_eq!(chain, [0, 1, 2]);
        assert_eq!(sum, Duration::from_secs(6));
        let (chain, sum) = g.longest_chain(|i| budgets[i], false);
        assert_eq!(chain, [0, 2]);
        assert_eq!(sum, Duration::from_secs(5));
    }

    #[test]
    fn longest_chain_saturates_at_duration_max() {
        let g = graph(&[("a", &[]), ("b", &["a"])]).unwrap();
        let (_, sum) = g.longest_chain(|_| Some(Duration::MAX), false);
        assert_eq!(sum, Duration::MAX);
    }
}
