//! Difference types of the engine's differential collections: cell statistics, and cell
//! statistics per bootstrap replicate. Both are exact fixed-point sums, so a retraction
//! cancels its match exactly.

use differential_dataflow::difference::{Abelian, IsZero, Monoid, Multiply, Semigroup};
use nashflow_kernels::stats::CellStats;
use serde::{Deserialize, Serialize};

/// Cell statistics as a differential difference type.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct CellDiff(pub CellStats);

impl IsZero for CellDiff {
    fn is_zero(&self) -> bool {
        self.0.is_zero()
    }
}

impl Semigroup for CellDiff {
    fn plus_equals(&mut self, rhs: &Self) {
        self.0.plus(&rhs.0);
    }
}

impl Monoid for CellDiff {
    fn zero() -> Self {
        CellDiff::default()
    }
}

impl Abelian for CellDiff {
    fn negate(&mut self) {
        self.0 = self.0.scaled(-1);
    }
}

impl Multiply<isize> for CellDiff {
    type Output = CellDiff;
    fn multiply(self, rhs: &isize) -> CellDiff {
        CellDiff(self.0.scaled(*rhs as i64))
    }
}

/// Per-replicate cell statistics (index = replicate) as a difference type: one update per
/// cell carries every bootstrap replicate. The empty vector is zero.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReplicateDiff(pub Vec<CellStats>);

impl IsZero for ReplicateDiff {
    fn is_zero(&self) -> bool {
        self.0.iter().all(CellStats::is_zero)
    }
}

impl Semigroup for ReplicateDiff {
    fn plus_equals(&mut self, rhs: &Self) {
        if self.0.len() < rhs.0.len() {
            self.0.resize(rhs.0.len(), CellStats::default());
        }
        for (a, b) in self.0.iter_mut().zip(&rhs.0) {
            a.plus(b);
        }
    }
}

impl Monoid for ReplicateDiff {
    fn zero() -> Self {
        ReplicateDiff::default()
    }
}

impl Abelian for ReplicateDiff {
    fn negate(&mut self) {
        for c in &mut self.0 {
            *c = c.scaled(-1);
        }
    }
}

impl Multiply<isize> for ReplicateDiff {
    type Output = ReplicateDiff;
    fn multiply(self, rhs: &isize) -> ReplicateDiff {
        ReplicateDiff(self.0.iter().map(|c| c.scaled(*rhs as i64)).collect())
    }
}
