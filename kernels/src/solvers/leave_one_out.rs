//! `mene` of every leave-one-out subgame of a constant-sum game (Level 2 solves one per
//! candidate), from one warm-started LP instead of a cold solve each.
//!
//! The maximin LP `max z : Σ_i x_i M[i,j] − z + s_j ≥ 0 ∀j, Σx = 1` is solved once with every
//! slack `s_j` fixed at 0 (the game's own maximin LP). The subgame without c is that LP with
//! `x_c` fixed at 0 and `s_c` released (column c's constraint then never binds: payoffs are
//! range-normalised, so `s_c ≤ 1` suffices); microlp re-optimises from the parent's basis.
//! Its maximin solution then gives the subgame's equilibrium structure as in `mene`.
//!
//! Faster, and tried before it: the game's own optimal tableau at σ's support
//! (`tableau::Maximin`) minus policy c is re-optimised by a few pivots, and the
//! subgame's σ is computed from the support found (`unique_equilibrium_on`). The microlp base
//! LP is only built when some subgame needs the general route.
//!
//! Fastest, and tried first when the caller has one: the subgame's support in a nearby game
//! (the previous epoch's). It is checked directly by one least-squares solve
//! (`unique_equilibrium_on`); when it moved, it is the start basis, re-optimised: fewer pivots
//! than deriving the subgame from σ's optimum, since the subgame's own previous optimum is
//! usually closer than σ's. That start is reached from σ's tableau by pivoting only the basis
//! differences (`Maximin::rebased_without`, typically under ten pivots) rather than built from
//! scratch (one pivot per support member); the support found is verified the same way. The
//! fallback builds the subgame's own tableau at the hint (`equilibrium_from`).

use microlp::{ComparisonOp, LinearExpr, OptimizationDirection, Problem, SolveOutcome, Variable};

use std::sync::OnceLock;

use super::mene::{
    constant_sum_mene, equilibrium_from, mene, mene_without, subgame_equilibrium, subgame_from,
    support_of, unique_equilibrium_on, CONSTANT_SUM_TOL,
};
use super::tableau::Maximin;
use crate::matrix::Matrix;
use crate::KernelError;

/// The base LP of a constant-sum game, ready to derive each subgame from.
pub struct LeaveOneOut {
    /// Range-normalised.
    m: Matrix,
    /// Its constant sum.
    total: f64,
    sigma: Vec<f64>,
    /// Per policy c: the game without c still holds a 0 and a 1, so normalising it is the
    /// identity and its constant sum is this game's (when c ≠ 0, the same reference entry).
    keeps_range: Vec<bool>,
    /// The tableau at σ's support, built on first need (`None`: singular there).
    tableau: OnceLock<Option<Maximin>>,
    /// Built on first need; `None` when the base LP failed: every subgame is then solved cold.
    base: OnceLock<Option<Base>>,
}

struct Base {
    lp: microlp::Solution,
    x: Vec<Variable>,
    s: Vec<Variable>,
}

fn solution(r: Result<SolveOutcome, microlp::Error>) -> Option<microlp::Solution> {
    match r {
        Ok(SolveOutcome::Solution(s)) => Some(s),
        _ => None,
    }
}

/// For each policy c of a range-normalised `m`: whether some 0 and some 1 lie outside c's row
/// and column (then the game without c spans [0, 1] too).
fn keeps_range(m: &Matrix) -> Vec<bool> {
    let n = m.n();
    // Entries equal to `x` in all of m, and in each row and column.
    let count = |x: f64| {
        let (mut total, mut rows, mut cols) = (0usize, vec![0usize; n], vec![0usize; n]);
        for (i, row) in rows.iter_mut().enumerate() {
            for (j, &v) in m.row(i).iter().enumerate() {
                if v == x {
                    total += 1;
                    *row += 1;
                    cols[j] += 1;
                }
            }
        }
        (total, rows, cols)
    };
    let (zeros, ones) = (count(0.0), count(1.0));
    let outside = |(total, rows, cols): &(usize, Vec<usize>, Vec<usize>), x: f64, c: usize| {
        total - (rows[c] + cols[c] - usize::from(m[(c, c)] == x)) > 0
    };
    (0..n)
        .map(|c| outside(&zeros, 0.0, c) && outside(&ones, 1.0, c))
        .collect()
}

impl LeaveOneOut {
    /// For a constant-sum `m` with `sigma = mene(m)`; `None` for other games.
    pub fn new(m: &Matrix, sigma: &[f64]) -> Option<LeaveOneOut> {
        let m = m.normalized();
        let total = m.constant_sum(CONSTANT_SUM_TOL)?;
        Some(LeaveOneOut {
            keeps_range: keeps_range(&m),
            m,
            total,
            sigma: sigma.to_vec(),
            tableau: OnceLock::new(),
            base: OnceLock::new(),
        })
    }

    fn base(m: &Matrix) -> Option<Base> {
        let n = m.n();
        let mut p = Problem::new(OptimizationDirection::Maximize);
        let x: Vec<Variable> = (0..n).map(|_| p.add_var(0.0, (0.0, 1.0))).collect();
        let z = p.add_var(1.0, (0.0, 1.0));
        let s: Vec<Variable> = (0..n).map(|_| p.add_var(0.0, (0.0, 1.0))).collect();
        p.add_constraint(
            x.iter().map(|&v| (v, 1.0)).collect::<LinearExpr>(),
            ComparisonOp::Eq,
            1.0,
        );
        for j in 0..n {
            let mut e: LinearExpr = (0..n)
                .filter(|&i| m[(i, j)] != 0.0)
                .map(|i| (x[i], m[(i, j)]))
                .collect();
            e.add(z, -1.0);
            e.add(s[j], 1.0);
            p.add_constraint(e, ComparisonOp::Ge, 0.0);
        }
        let mut lp = solution(p.solve())?;
        for &sj in &s {
            lp = solution(lp.fix_var(sj, 0.0))?;
        }
        Some(Base { lp, x, s })
    }

    /// `mene` of the game without policy `c` (in the order of the remaining policies), trying
    /// the subgame support `hint` first (in subgame indices; e.g. this subgame's support in the
    /// previous epoch): checked directly when `held` (it was last time's answer too), else as
    /// the start basis. The result depends on neither.
    pub fn without(
        &self,
        c: usize,
        hint: Option<&[usize]>,
        held: bool,
    ) -> Result<Vec<f64>, KernelError> {
        if let Some(known) = mene_without(&self.m, self.total, &self.sigma, c) {
            return Ok(known);
        }
        let n = self.m.n();
        let (sub, total) = if c != 0 && self.keeps_range[c] {
            // What normalising and checking would give, to the bit, without the two passes:
            // the same entries, and the sum check passes on a subset of the pairs this game
            // passed with the same reference entry M[0,0] and tolerance (range 1 both).
            (self.m.without(c), self.total)
        } else {
            let sub = self.m.without(c).normalized();
            let Some(total) = sub.constant_sum(CONSTANT_SUM_TOL) else {
                return mene(&sub);
            };
            (sub, total)
        };
        let tableau = || {
            self.tableau
                .get_or_init(|| Maximin::at_support(&self.m, &support_of(&self.sigma)))
        };
        if let Some(h) = hint {
            let v = total / 2.0;
            // The hint itself, checked by one least-squares solve, when it held last time
            // too: then it usually still does (4 subgames in 5 of a league with signal, more
            // with small epochs). A support that moved last time usually moves again (the
            // league of noise), and the check would be wasted on top of the pivots below,
            // which reach the hint anyway when it holds.
            if held {
                if let Some(x) = unique_equilibrium_on(&sub, v, h) {
                    return Ok(x);
                }
            }
            // σ's tableau moved to the hint's basis, then re-optimised.
            if let Some(x) = tableau()
                .as_ref()
                .and_then(|t| subgame_from(&sub, v, t, c, h))
            {
                return Ok(x);
            }
            // The subgame's own tableau, built at the hint.
            if let Some(x) = equilibrium_from(&sub, v, h) {
                return Ok(x);
            }
        }
        let tableau = tableau();
        if let Some(x) = tableau
            .as_ref()
            .and_then(|t| subgame_equilibrium(&sub, total / 2.0, t, c))
        {
            return Ok(x);
        }
        let base = self.base.get_or_init(|| Self::base(&self.m));
        let maximin = base.as_ref().and_then(|b| {
            let lp = solution(b.lp.clone().fix_var(b.x[c], 0.0))?;
            let (lp, _) = lp.unfix_var(b.s[c]).ok()?;
            let lp = match lp {
                SolveOutcome::Solution(s) => s,
                SolveOutcome::Interrupted(_) => return None,
            };
            Some(
                (0..n)
                    .filter(|&k| k != c)
                    .map(|k| lp.var_value(b.x[k]))
                    .collect::<Vec<f64>>(),
            )
        });
        match maximin {
            Some(x) => constant_sum_mene(&sub, total / 2.0, &crate::matrix::clean_simplex(x)),
            None => mene(&sub),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::keeps_range;
    use crate::matrix::Matrix;

    /// A policy whose row or column holds the only 0 or the only 1 changes the subgame's
    /// range; every other policy keeps it.
    #[test]
    fn keeps_range_finds_the_policies_holding_an_extreme() {
        let m = Matrix::from_fn(6, |i, j| match (i, j) {
            (1, 2) => 0.0,
            (3, 0) => 1.0,
            (4, 4) | (5, 4) => 1.0,
            _ => 0.5,
        });
        // The 0 is only in row 1 / column 2; the 1s are at (3,0), (4,4) and (5,4).
        assert_eq!(keeps_range(&m), vec![true, false, false, true, true, true]);
        let lone = Matrix::from_fn(3, |i, j| if (i, j) == (2, 2) { 1.0 } else { 0.0 });
        assert_eq!(keeps_range(&lone), vec![true, true, false]);
    }
}
