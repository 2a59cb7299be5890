//! One game's running cell statistics on its worker, dense in matrix order.
//!
//! A game's matrix orders its policies by name, and a policy belongs to the game while some
//! non-zero cell has it as row or column. Keeping the cells in that order (rather than hashed
//! by policy ids) makes an update one indexed add and a snapshot one copy: in a league every
//! epoch touches most of the n² cells, so the per-cell hashing of a keyed table, and the
//! placing of each cell by position at snapshot time, were a tenth of a small epoch. The
//! order changes only when a policy appears (the table is re-laid out at once) or loses its
//! last cell (re-laid out before the next read, so a cell that vanishes and comes back within
//! an epoch costs nothing).

use nashflow_kernels::stats::CellStats;

use crate::shard::Interner;

/// Marks an id with no position.
const ABSENT: u32 = u32::MAX;

#[derive(Clone, Debug, Default)]
pub struct GameTable {
    /// Policy ids in matrix order, and their names.
    ids: Vec<u32>,
    names: Vec<String>,
    /// Each policy id's position, indexed by id (`ABSENT` where it has none). Ids are the
    /// run's [`Interner`]'s: small integers.
    position: Vec<u32>,
    /// Row-major n×n.
    cells: Vec<CellStats>,
    /// Per position: its non-zero cells (a diagonal cell counts once).
    touching: Vec<u32>,
    nonzero: usize,
    /// Some position has no non-zero cell left: [`GameTable::settle`] drops it.
    stale: bool,
}

impl GameTable {
    /// Adds a change of cell (row id, column id); `names` names a policy the table has not
    /// seen. True when the set of non-zero cells changed.
    pub fn add(&mut self, (a, b): (u32, u32), diff: &CellStats, names: &Interner) -> bool {
        for id in [a, b] {
            if self.position_of(id).is_none() {
                self.insert(id, names);
            }
        }
        let (pa, pb) = (self.position[a as usize], self.position[b as usize]);
        let n = self.ids.len();
        let cell = &mut self.cells[pa as usize * n + pb as usize];
        let was_zero = cell.is_zero();
        cell.plus(diff);
        let is_zero = cell.is_zero();
        if was_zero == is_zero {
            // A zero change to a new policy's cell leaves it with none.
            self.stale |= self.touching[pa as usize] == 0 || self.touching[pb as usize] == 0;
            return false;
        }
        let step = |t: &mut u32| {
            if is_zero {
                *t -= 1;
            } else {
                *t += 1;
            }
        };
        step(&mut self.touching[pa as usize]);
        if pb != pa {
            step(&mut self.touching[pb as usize]);
        }
        if is_zero {
            self.nonzero -= 1;
            self.stale |= self.touching[pa as usize] == 0 || self.touching[pb as usize] == 0;
        } else {
            self.nonzero += 1;
        }
        true
    }

    /// No non-zero cell left: the game has vanished.
    pub fn is_empty(&self) -> bool {
        self.nonzero == 0
    }

    /// Drops the policies that lost their last cell; call before reading the table.
    pub fn settle(&mut self) {
        if !self.stale {
            return;
        }
        self.stale = false;
        let keep: Vec<usize> = (0..self.ids.len())
            .filter(|&k| self.touching[k] > 0)
            .collect();
        self.lay_out(keep.iter().map(|&k| Some(k)).collect(), None);
    }

    /// Policy names in matrix order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Policy ids in matrix order.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Row-major n×n cells.
    pub fn cells(&self) -> &[CellStats] {
        &self.cells
    }

    pub fn position_of(&self, id: u32) -> Option<usize> {
        match self.position.get(id as usize) {
            Some(&p) if p != ABSENT => Some(p as usize),
            _ => None,
        }
    }

    /// Places a new policy at its name's place in the order.
    fn insert(&mut self, id: u32, names: &Interner) {
        let name = names.name(id).to_string();
        let at = self.names.partition_point(|n| *n < name);
        let mut from: Vec<Option<usize>> = (0..self.ids.len()).map(Some).collect();
        from.insert(at, None);
        self.lay_out(from, Some((id, name)));
    }

    /// Re-lays the table out: new position k holds old position `from[k]`, or, where that is
    /// `None`, the policy `fresh` (id, name) with no cells yet.
    fn lay_out(&mut self, from: Vec<Option<usize>>, mut fresh: Option<(u32, String)>) {
        let (old_n, n) = (self.ids.len(), from.len());
        let mut ids = Vec::with_capacity(n);
        let mut names = Vec::with_capacity(n);
        let mut touching = Vec::with_capacity(n);
        for f in &from {
            match f {
                Some(k) => {
                    ids.push(self.ids[*k]);
                    names.push(std::mem::take(&mut self.names[*k]));
                    touching.push(self.touching[*k]);
                }
                None => {
                    let (id, name) = fresh.take().expect("one fresh policy");
                    ids.push(id);
                    names.push(name);
                    touching.push(0);
                }
            }
        }
        let mut cells = vec![CellStats::default(); n * n];
        for (r, fr) in from.iter().enumerate() {
            let Some(fr) = fr else { continue };
            for (c, fc) in from.iter().enumerate() {
                if let Some(fc) = fc {
                    cells[r * n + c] = self.cells[fr * old_n + fc];
                }
            }
        }
        for &id in &self.ids {
            self.position[id as usize] = ABSENT;
        }
        for (k, &id) in ids.iter().enumerate() {
            if self.position.len() <= id as usize {
                self.position.resize(id as usize + 1, ABSENT);
            }
            self.position[id as usize] = k as u32;
        }
        self.ids = ids;
        self.names = names;
        self.touching = touching;
        self.cells = cells;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use nashflow_kernels::stats::CellStats;

    use super::GameTable;
    use crate::shard::Interner;

    fn stats(n: i64) -> CellStats {
        CellStats {
            n,
            sum: 3 * n as i128,
            ..CellStats::default()
        }
    }

    /// Random changes (appearing, vanishing and returning cells) leave the table equal to a
    /// keyed table of the non-zero cells, with the policies of those cells in name order.
    #[test]
    fn agrees_with_a_keyed_table() {
        let names = Interner::default();
        // Ids in an order other than the names'.
        let ids: Vec<u32> = ["p3", "p0", "p4", "p1", "p2", "p5"]
            .iter()
            .map(|p| names.id(p))
            .collect();
        let mut rng = nashflow_kernels::rng::SplitMix64::new(9);
        let mut table = GameTable::default();
        let mut keyed: BTreeMap<(u32, u32), i64> = BTreeMap::new();
        for step in 0..4000 {
            let (a, b) = (ids[rng.below(6)], ids[rng.below(6)]);
            // Mostly removals once a cell exists, so cells and policies vanish often.
            let held = keyed.get(&(a, b)).copied().unwrap_or(0);
            let d = if held > 0 && rng.below(3) > 0 {
                -(rng.below(held as usize) as i64 + 1)
            } else {
                rng.below(3) as i64 + 1
            };
            let changed = table.add((a, b), &stats(d), &names);
            let now = held + d;
            assert_eq!(changed, (held == 0) != (now == 0), "step {step}");
            if now == 0 {
                keyed.remove(&(a, b));
            } else {
                keyed.insert((a, b), now);
            }
            if rng.below(4) > 0 {
                continue;
            }
            table.settle();
            let mut live: Vec<u32> = keyed.keys().flat_map(|&(a, b)| [a, b]).collect();
            live.sort_by_key(|&id| names.name(id));
            live.dedup();
            assert_eq!(table.ids(), live, "step {step}");
            let order: Vec<String> = live.iter().map(|&id| names.name(id).to_string()).collect();
            assert_eq!(table.names(), order);
            assert_eq!(table.is_empty(), keyed.is_empty());
            let n = live.len();
            for (r, &ra) in live.iter().enumerate() {
                assert_eq!(table.position_of(ra), Some(r));
                for (c, &cb) in live.iter().enumerate() {
                    let want = keyed
                        .get(&(ra, cb))
                        .map_or(CellStats::default(), |&k| stats(k));
                    assert_eq!(table.cells()[r * n + c], want, "step {step} cell {r},{c}");
                }
            }
        }
    }
}
