//! One game's running cell statistics on its worker, dense in matrix order.
//!
//! A game's matrix orders its policies by name, and a policy belongs to the game while some
//! non-zero cell has it as row or column. Keeping the cells in that order (rather than hashed
//! by cell) makes an update one indexed add and a snapshot one copy: in a league every epoch
//! touches most of the n² cells, so the per-cell hashing of a keyed table, and the placing
//! of each cell by position at snapshot time, were a tenth of a small epoch. A new policy
//! is appended (the rows grow by doubling, so a game that starts with n policies costs
//! O(n²), not a re-layout per policy); the name order, and the dropping of policies that lost
//! their last cell, wait for [`GameTable::settle`], once before the table is read.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use nashflow_kernels::stats::CellStats;

use crate::shard::Interner;

#[derive(Clone, Debug, Default)]
pub struct GameTable {
    /// Policy ids by position, and their names.
    ids: Vec<u32>,
    names: Vec<String>,
    /// Each policy id's position.
    position: HashMap<u32, usize, RandomState>,
    /// Row-major with `stride` ≥ n columns per row (n once settled).
    cells: Vec<CellStats>,
    stride: usize,
    /// Per position: its non-zero cells (a diagonal cell counts once).
    touching: Vec<u32>,
    nonzero: usize,
    /// Out of name order, or holding a policy with no non-zero cell: `settle` re-lays it out.
    stale: bool,
}

impl GameTable {
    /// Adds changes of cells (row id, column id); `names` names the policies the table has
    /// not seen. Positions are found first (appending new policies), then each cell is
    /// requested a few changes ahead of its add: between epochs a league's table leaves the
    /// caches, and changes come in no particular order, so each add would otherwise wait
    /// for its cell in turn (a tenth of a 1,000-match epoch).
    pub fn add_all(&mut self, changes: &[((u32, u32), CellStats)], names: &Interner) {
        const AHEAD: usize = 8;
        let at: Vec<(usize, usize)> = changes
            .iter()
            .map(|&((a, b), _)| {
                let pa = self.position_or_append(a, names);
                (pa, self.position_or_append(b, names))
            })
            .collect();
        for (k, (&(pa, pb), (_, diff))) in at.iter().zip(changes).enumerate() {
            if let Some(&(fa, fb)) = at.get(k + AHEAD) {
                // A cell spans two lines.
                let ahead = &self.cells[fa * self.stride + fb];
                let p = std::ptr::from_ref(ahead).cast::<u8>();
                nashflow_schemas::prefetch::line(p);
                nashflow_schemas::prefetch::line(
                    p.wrapping_add(std::mem::size_of::<CellStats>() - 1),
                );
            }
            self.add_at(pa, pb, diff);
        }
    }

    /// Adds a change of the cell at positions (`pa`, `pb`).
    fn add_at(&mut self, pa: usize, pb: usize, diff: &CellStats) {
        let cell = &mut self.cells[pa * self.stride + pb];
        let was_zero = cell.is_zero();
        cell.plus(diff);
        let is_zero = cell.is_zero();
        if was_zero != is_zero {
            let step = |t: &mut u32| {
                if is_zero {
                    *t -= 1;
                } else {
                    *t += 1;
                }
            };
            step(&mut self.touching[pa]);
            if pb != pa {
                step(&mut self.touching[pb]);
            }
            if is_zero {
                self.nonzero -= 1;
            } else {
                self.nonzero += 1;
            }
        }
        // Also a zero change to a new policy's cell, which leaves that policy with none.
        self.stale |= self.touching[pa] == 0 || self.touching[pb] == 0;
    }

    /// No non-zero cell left: the game has vanished.
    pub fn is_empty(&self) -> bool {
        self.nonzero == 0
    }

    /// Puts the policies in name order and drops those that lost their last cell; call
    /// before reading the table.
    pub fn settle(&mut self) {
        if !self.stale {
            return;
        }
        self.stale = false;
        let mut keep: Vec<usize> = (0..self.ids.len())
            .filter(|&k| self.touching[k] > 0)
            .collect();
        keep.sort_by(|&x, &y| self.names[x].cmp(&self.names[y]));
        let stride = keep.len();
        self.lay_out(&keep, stride);
    }

    /// Policy names in matrix order (once settled).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Policy ids in matrix order (once settled).
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Row-major n×n cells (once settled).
    pub fn cells(&self) -> &[CellStats] {
        debug_assert!(!self.stale, "read a table before settling it");
        &self.cells
    }

    pub fn position_of(&self, id: u32) -> Option<usize> {
        self.position.get(&id).copied()
    }

    fn position_or_append(&mut self, id: u32, names: &Interner) -> usize {
        if let Some(p) = self.position_of(id) {
            return p;
        }
        let n = self.ids.len();
        if n == self.stride {
            let all: Vec<usize> = (0..n).collect();
            self.lay_out(&all, (2 * n).max(4));
        }
        self.ids.push(id);
        self.names.push(names.name(id).to_string());
        self.touching.push(0);
        self.position.insert(id, n);
        self.stale = true;
        n
    }

    /// Re-lays the table out with `stride` columns per row: new position k holds old
    /// position `from[k]`.
    fn lay_out(&mut self, from: &[usize], stride: usize) {
        let mut cells = vec![CellStats::default(); stride * stride];
        for (r, &fr) in from.iter().enumerate() {
            for (c, &fc) in from.iter().enumerate() {
                cells[r * stride + c] = self.cells[fr * self.stride + fc];
            }
        }
        self.ids = from.iter().map(|&k| self.ids[k]).collect();
        self.names = from
            .iter()
            .map(|&k| std::mem::take(&mut self.names[k]))
            .collect();
        self.touching = from.iter().map(|&k| self.touching[k]).collect();
        self.position = self
            .ids
            .iter()
            .enumerate()
            .map(|(k, &id)| (id, k))
            .collect();
        self.cells = cells;
        self.stride = stride;
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

    /// Random epochs of changes (appearing, vanishing and returning cells) leave the table equal to a
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
        // An epoch's changes, applied together (a cell may change more than once in one).
        let mut changes = Vec::new();
        for step in 0..4000 {
            let (a, b) = (ids[rng.below(6)], ids[rng.below(6)]);
            // Mostly removals once a cell exists, so cells and policies vanish often.
            let held = keyed.get(&(a, b)).copied().unwrap_or(0);
            let d = if held > 0 && rng.below(3) > 0 {
                -(rng.below(held as usize) as i64 + 1)
            } else {
                rng.below(3) as i64 + 1
            };
            changes.push(((a, b), stats(d)));
            let now = held + d;
            if now == 0 {
                keyed.remove(&(a, b));
            } else {
                keyed.insert((a, b), now);
            }
            if rng.below(4) > 0 {
                continue;
            }
            table.add_all(&changes, &names);
            changes.clear();
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
