//! The maximin LP of a symmetric constant-sum game on a compact simplex tableau that can start
//! from any basis: from the support of a nearby game's equilibrium (the previous epoch's),
//! from the game's own optimum with one policy removed (a Level 2 subgame), or, cold, from the
//! policy best against uniform play. From such a start
//! the optimum is usually a few to a few dozen pivots away, far less than a cold LP.
//!
//! The LP is `nash-lp`'s positive form: with `P = M̂ + 1` (M̂ range-normalised),
//! `min Σu : Pᵀu − t = 1, u, t ≥ 0`, whose optimal `u/Σu` is a maximin strategy. For a game
//! whose equilibrium is unique with support S, the optimal basis is `B(S) = {u_k : k ∈ S} ∪
//! {t_j : j ∉ S}`; its block `P_SSᵀ` is nonsingular whenever `[A_SS; 1ᵀ]` has full column rank
//! (A = M̂ − v antisymmetric), which is what `unique_equilibrium_on` requires anyway.
//!
//! A start basis from another game is in general neither primal nor dual feasible (the
//! matrix moved), so it is optimised by the parametric self-dual simplex method (see
//! [`Maximin::optimize`]). A subgame is derived from an optimal tableau so that each step
//! keeps half of optimality: primal simplex after relaxing a constraint, dual simplex after
//! fixing a variable. (Least-index criss-cross, which needs no feasible start, took
//! thousands of pivots here.) Only the support is read off the result: the caller
//! verifies it and computes σ from it (`unique_equilibrium_on`), so a numerically poor pivot
//! can cost a fallback to the cold LP, never a wrong or path-dependent answer.

use crate::matrix::Matrix;

/// `support` is strictly increasing and below `n`, and not empty.
pub(crate) fn is_index_set(support: &[usize], n: usize) -> bool {
    !support.is_empty() && support.windows(2).all(|w| w[0] < w[1]) && support[support.len() - 1] < n
}

/// Below this magnitude an entry does not qualify as a pivot or as an infeasibility.
const EPS: f64 = 1e-10;

/// A compact tableau: only the nonbasic variables have columns (a basic variable's column is
/// a unit vector, so storing it would double every pivot's work for nothing).
///
/// Variables: `u_i` = i (0..n), `t_j` = n + j. There are always n basic variables (one per
/// constraint row) and n nonbasic ones, each in a slot.
#[derive(Clone, Debug)]
pub(crate) struct Maximin {
    n: usize,
    /// Row width: n slots, zero padding, then the right-hand side.
    width: usize,
    /// n constraint rows, then the reduced-cost row; row-major.
    a: Vec<f64>,
    /// The basic variable of each constraint row.
    basis: Vec<usize>,
    /// The nonbasic variable in each slot.
    nonbasic: Vec<usize>,
    /// Each variable's row (basic) or slot (nonbasic).
    place: Vec<Place>,
    /// Rows still in the LP (a dropped constraint's row is off).
    row_on: Vec<bool>,
    /// Variables in the LP (a removed policy's `u` and `t` are off).
    col_on: Vec<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Place {
    Row(usize),
    Slot(usize),
}

impl Maximin {
    /// The tableau of the range-normalised `m` at basis `B(support)` (sorted indices); `None`
    /// when that basis is singular.
    pub(crate) fn at_support(m: &Matrix, support: &[usize]) -> Option<Maximin> {
        let n = m.n();
        if !is_index_set(support, n) {
            return None;
        }
        // Start at the all-surplus basis: row j reads `t_j − Σ_i P[i,j] u_i = −1`, so its
        // slots hold −P[·,j] (u_i in slot i) and the rhs −1; the cost row holds u's costs (1).
        // Then u_S enters the rows of S. Zero columns pad a row to whole 4-wide vectors (the
        // pivot's inner loop then has no scalar tail); they stay zero.
        let width = (n + 1).next_multiple_of(4);
        let mut a = vec![0.0; (n + 1) * width];
        for j in 0..n {
            let row = &mut a[j * width..(j + 1) * width];
            for i in 0..n {
                row[i] = -(m[(i, j)] + 1.0);
            }
            row[width - 1] = -1.0;
        }
        a[n * width..n * width + n].fill(1.0);
        let place = (0..n)
            .map(Place::Slot)
            .chain((0..n).map(Place::Row))
            .collect();
        let mut t = Maximin {
            n,
            width,
            a,
            basis: (n..2 * n).collect(),
            nonbasic: (0..n).collect(),
            place,
            row_on: vec![true; n],
            col_on: vec![true; 2 * n],
        };
        // u_S in the rows of S, with partial pivoting.
        for &k in support {
            let q = t.slot(k)?;
            let r = support
                .iter()
                .copied()
                .filter(|&r| t.basis[r] >= n)
                .max_by(|&x, &y| t.at(x, q).abs().total_cmp(&t.at(y, q).abs()))?;
            if t.at(r, q).abs() <= EPS {
                return None;
            }
            t.pivot(r, q);
        }
        Some(t)
    }

    fn at(&self, r: usize, q: usize) -> f64 {
        self.a[r * self.width + q]
    }

    fn rhs(&self, r: usize) -> f64 {
        self.a[r * self.width + self.width - 1]
    }

    /// The slot of nonbasic variable `c`.
    fn slot(&self, c: usize) -> Option<usize> {
        match self.place[c] {
            Place::Slot(q) => Some(q),
            Place::Row(_) => None,
        }
    }

    /// Reduced cost of nonbasic variable `c`.
    fn cost(&self, c: usize) -> f64 {
        self.slot(c).map_or(0.0, |q| self.at(self.n, q))
    }

    /// Entry of nonbasic variable `c`'s column in row `r`.
    fn entry(&self, r: usize, c: usize) -> f64 {
        self.slot(c).map_or(0.0, |q| self.at(r, q))
    }

    fn is_basic(&self, c: usize) -> Option<usize> {
        match self.place[c] {
            Place::Row(r) if self.row_on[r] => Some(r),
            _ => None,
        }
    }

    /// Variable `c` may enter: in the LP and not basic.
    fn enterable(&self, c: usize) -> bool {
        self.col_on[c] && self.slot(c).is_some()
    }

    /// Pivot on row r and slot q: the slot's variable enters, row r's leaves into the slot.
    ///
    /// On x86-64 with AVX2 the same code is compiled for 4-wide vectors (the baseline target
    /// has 2-wide SSE2 only). It does the same multiplications and subtractions, element by
    /// element (no fused multiply-add), so the result is the same to the bit.
    fn pivot(&mut self, r: usize, q: usize) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { self.pivot_avx2(r, q) };
            return;
        }
        self.pivot_portable(r, q);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn pivot_avx2(&mut self, r: usize, q: usize) {
        self.pivot_portable(r, q);
    }

    #[inline(always)]
    fn pivot_portable(&mut self, r: usize, q: usize) {
        let w = self.width;
        let p = self.a[r * w + q];
        let (before, rest) = self.a.split_at_mut(r * w);
        let (row, after) = rest.split_at_mut(w);
        let inv = 1.0 / p;
        for x in row.iter_mut() {
            *x *= inv;
        }
        row[q] = inv;
        let eliminate = |other: &mut [f64]| {
            let f = other[q];
            if f != 0.0 {
                for (o, &x) in other.iter_mut().zip(row.iter()) {
                    *o -= f * x;
                }
                other[q] = -f * inv;
            }
        };
        for (k, other) in before.chunks_mut(w).enumerate() {
            if self.row_on[k] {
                eliminate(other);
            }
        }
        for (k, other) in after.chunks_mut(w).enumerate() {
            let k = r + 1 + k;
            if k == self.n || self.row_on[k] {
                eliminate(other);
            }
        }
        let (entering, leaving) = (self.nonbasic[q], self.basis[r]);
        self.basis[r] = entering;
        self.nonbasic[q] = leaving;
        self.place[entering] = Place::Row(r);
        self.place[leaving] = Place::Slot(q);
    }

    /// Enters nonbasic variable `c` in row `r`.
    fn enter(&mut self, r: usize, c: usize) {
        let q = self.slot(c).expect("only a nonbasic variable enters");
        self.pivot(r, q);
    }

    /// Ratio test for variable `c`: the live row with a positive entry that limits the step
    /// first (ties to the smaller basic index).
    fn leaving(&self, c: usize) -> Option<usize> {
        let q = self.slot(c)?;
        let mut best: Option<(f64, usize)> = None;
        for r in (0..self.n).filter(|&r| self.row_on[r] && self.at(r, q) > EPS) {
            let ratio = self.rhs(r).max(0.0) / self.at(r, q);
            let better = match best {
                None => true,
                Some((b, rb)) => {
                    ratio < b - EPS || (ratio <= b + EPS && self.basis[r] < self.basis[rb])
                }
            };
            if better {
                best = Some((ratio, r));
            }
        }
        best.map(|(_, r)| r)
    }

    /// Simplex to optimality from the current basis, which may be neither primal nor dual
    /// feasible (a nearby game's optimum: in a symmetric game a support that moved breaks
    /// both at once). Parametric self-dual method: every basic value and every reduced cost
    /// is raised by μ·1, μ starts at the smallest value that makes the basis optimal, and each
    /// pivot lowers it to the next breakpoint (a primal pivot when a reduced cost reaches 0,
    /// a dual one when a basic value does) until μ = 0. Each pivot thus heads for the
    /// optimum; a single-artificial phase 1 then primal simplex, which ignores the objective
    /// until feasible, took about a third more pivots from the Level 2 starts (6.9 against
    /// 5.2 per subgame in a league of noise). False when `max_pivots` run out or the
    /// LP looks infeasible or unbounded (which the true LP never is: the caller falls back to
    /// the cold LP).
    pub(crate) fn optimize(&mut self, max_pivots: usize) -> bool {
        let n = self.n;
        // The perturbation's coefficients in the current basis: a column (per row, moving
        // with the basic values) and a row (per slot, moving with the reduced costs).
        let mut col = vec![1.0; n];
        let mut row = vec![1.0; n];
        let mut pivots = 0;
        loop {
            let mut mu = EPS;
            let mut at = None;
            // Only an infeasibility (a negative value) sets a positive μ. The basis is
            // optimal for the perturbed LP at the current μ, so an infeasible value's
            // coefficient is positive; when rounding broke that, give up.
            for (r, &k) in col.iter().enumerate() {
                let b = self.rhs(r);
                if b < -EPS && self.row_on[r] {
                    if k <= EPS {
                        return false;
                    }
                    if -b > mu * k {
                        mu = -b / k;
                        at = Some(Place::Row(r));
                    }
                }
            }
            let costs = &self.a[n * self.width..n * self.width + n];
            for (q, &d) in costs.iter().enumerate() {
                if d < -EPS && self.col_on[self.nonbasic[q]] {
                    if row[q] <= EPS {
                        return false;
                    }
                    if -d > mu * row[q] {
                        mu = -d / row[q];
                        at = Some(Place::Slot(q));
                    }
                }
            }
            let (r, q) = match at {
                None => return true,
                // A reduced cost reaches 0 first: its variable enters (primal ratio test at μ).
                Some(Place::Slot(q)) => {
                    let leave = (0..n)
                        .filter(|&r| self.row_on[r] && self.at(r, q) > EPS)
                        .map(|r| ((self.rhs(r) + mu * col[r]).max(0.0) / self.at(r, q), r))
                        .min_by(|x, y| x.0.total_cmp(&y.0));
                    let Some((_, r)) = leave else {
                        return false;
                    };
                    (r, q)
                }
                // A basic value reaches 0 first: its variable leaves (dual ratio test at μ).
                Some(Place::Row(r)) => {
                    let enter = (0..n)
                        .filter(|&q| self.col_on[self.nonbasic[q]] && self.at(r, q) < -EPS)
                        .map(|q| ((self.at(n, q) + mu * row[q]).max(0.0) / -self.at(r, q), q))
                        .min_by(|x, y| x.0.total_cmp(&y.0));
                    let Some((_, q)) = enter else {
                        return false;
                    };
                    (r, q)
                }
            };
            if pivots == max_pivots {
                return false;
            }
            pivots += 1;
            // The perturbation moves with the pivot as the rhs column and the cost row do.
            let p = self.at(r, q);
            let cr = col[r] / p;
            for (k, ck) in col.iter_mut().enumerate() {
                if k != r && self.row_on[k] {
                    *ck -= self.at(k, q) * cr;
                }
            }
            col[r] = cr;
            let f = row[q] / p;
            if f != 0.0 {
                let pivot_row = &self.a[r * self.width..r * self.width + n];
                for (x, &a) in row.iter_mut().zip(pivot_row) {
                    *x -= f * a;
                }
                row[q] = -f;
            }
            self.pivot(r, q);
        }
    }

    /// The policies with positive u in the current basis, in increasing order, renumbered
    /// without `removed` (a subgame's indices).
    pub(crate) fn support(&self, removed: Option<usize>) -> Vec<usize> {
        let mut s: Vec<usize> = (0..self.n)
            .filter(|&r| self.row_on[r] && self.basis[r] < self.n && self.rhs(r) > EPS)
            .map(|r| self.basis[r])
            .collect();
        s.sort_unstable();
        if let Some(c) = removed {
            s.retain(|&k| k != c);
            s.iter_mut().filter(|k| **k > c).for_each(|k| *k -= 1);
        }
        s
    }

    /// This tableau moved to the basis of the game without policy `c` at `start` (a support in
    /// the subgame's indices, e.g. that subgame's previous optimum): `B(start)` plus `c`'s
    /// surplus, whose row then leaves the LP with `u_c`. Only the basis differences are
    /// pivoted (typically under ten, with partial pivoting), instead of building the
    /// subgame's tableau from scratch. The subgame's matrix may be a rescaling of this one's
    /// (when `c` held an extreme payoff); its maximin strategies, hence the optimal support,
    /// are the same. `None` when a pivot is too small: the caller builds the subgame's own
    /// tableau.
    pub(crate) fn rebased_without(&self, c: usize, start: &[usize]) -> Option<Maximin> {
        let n = self.n;
        if c >= n || !start.iter().all(|&k| k + 1 < n) {
            return None;
        }
        let mut in_start = vec![false; n];
        for &k in start {
            in_start[if k >= c { k + 1 } else { k }] = true;
        }
        // u_k basic for k in the start support, t_j for every other j (c included).
        let wanted = |v: usize| if v < n { in_start[v] } else { !in_start[v - n] };
        let mut t = self.clone();
        let entering: Vec<usize> = (0..2 * n)
            .filter(|&v| wanted(v) && t.slot(v).is_some())
            .collect();
        // The live rows whose basic variable is not wanted, in increasing order: each pivot
        // below gives one of them a wanted variable, so only these are ever scanned.
        let mut leaving: Vec<usize> = (0..n)
            .filter(|&r| t.row_on[r] && !wanted(t.basis[r]))
            .collect();
        for e in entering {
            let q = t.slot(e)?;
            // The largest |entry| (the last of equals, as `max_by` picks).
            let at = leaving
                .iter()
                .enumerate()
                .max_by(|&(_, &x), &(_, &y)| t.at(x, q).abs().total_cmp(&t.at(y, q).abs()))?
                .0;
            let r = leaving.remove(at);
            if t.at(r, q).abs() <= EPS {
                return None;
            }
            t.pivot(r, q);
        }
        let r = t.is_basic(n + c)?;
        t.row_on[r] = false;
        t.col_on[n + c] = false;
        t.col_on[c] = false;
        Some(t)
    }

    /// The optimal tableau of the game without policy `c`, from this optimal one: column c's
    /// constraint is relaxed first (its surplus becomes free and enters by primal simplex, then
    /// leaves the LP with its row: a free basic variable constrains nothing), then `u_c` is
    /// forced to 0 (a dual simplex step on its row) and dual simplex restores feasibility.
    /// Each step keeps the other half of optimality. `None` when
    /// that does not work out numerically or within `max_pivots`.
    pub(crate) fn without(&self, c: usize, max_pivots: usize) -> Option<Maximin> {
        let mut t = self.clone();
        let n = t.n;
        let mut budget = max_pivots;
        // 1. Relax column c's constraint.
        let surplus = n + c;
        if let Some(q) = t.slot(surplus) {
            let d = t.cost(surplus);
            if d.abs() <= EPS {
                return None;
            }
            if d > 0.0 {
                // Enter in the decreasing direction: negate the column.
                for r in 0..=n {
                    t.a[r * t.width + q] = -t.a[r * t.width + q];
                }
            }
            let r = t.leaving(surplus)?;
            t.enter(r, surplus);
            budget = budget.checked_sub(1)?;
        }
        let r = t.is_basic(surplus)?;
        t.row_on[r] = false;
        t.col_on[surplus] = false;
        if !t.primal(&mut budget) {
            return None;
        }
        // 2. Force u_c to 0: it leaves its row for the column with the smallest dual ratio.
        if let Some(r) = t.is_basic(c) {
            let k = (0..2 * n)
                .filter(|&k| k != c && t.enterable(k) && t.entry(r, k) > EPS)
                .min_by(|&x, &y| {
                    (t.cost(x) / t.entry(r, x)).total_cmp(&(t.cost(y) / t.entry(r, y)))
                })?;
            t.enter(r, k);
            budget = budget.checked_sub(1)?;
        }
        t.col_on[c] = false;
        if !t.dual(&mut budget) {
            return None;
        }
        Some(t)
    }

    /// Primal simplex (Dantzig pricing) from a primal feasible basis.
    fn primal(&mut self, budget: &mut usize) -> bool {
        let vars = 2 * self.n;
        loop {
            let Some(c) = (0..vars)
                .filter(|&c| self.enterable(c) && self.cost(c) < -EPS)
                .min_by(|&x, &y| self.cost(x).total_cmp(&self.cost(y)))
            else {
                return true;
            };
            let Some(r) = self.leaving(c) else {
                return false;
            };
            if *budget == 0 {
                return false;
            }
            *budget -= 1;
            self.enter(r, c);
        }
    }

    /// Dual simplex from a dual feasible basis: the most negative row leaves for the column
    /// with the smallest dual ratio.
    fn dual(&mut self, budget: &mut usize) -> bool {
        let vars = 2 * self.n;
        loop {
            let Some(r) = (0..self.n)
                .filter(|&r| self.row_on[r] && self.rhs(r) < -EPS)
                .min_by(|&x, &y| self.rhs(x).total_cmp(&self.rhs(y)))
            else {
                return (0..vars).all(|c| !self.col_on[c] || self.cost(c) >= -EPS);
            };
            let Some(k) = (0..vars)
                .filter(|&k| self.enterable(k) && self.entry(r, k) < -EPS)
                .min_by(|&x, &y| {
                    (self.cost(x) / -self.entry(r, x))
                        .total_cmp(&(self.cost(y) / -self.entry(r, y)))
                })
            else {
                return false;
            };
            if *budget == 0 {
                return false;
            }
            *budget -= 1;
            self.enter(r, k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Maximin;
    use crate::matrix::Matrix;

    /// The AVX2 build of a pivot and the portable one give the same tableau to the bit (on a
    /// CPU without AVX2 both calls take the portable route).
    #[test]
    fn vector_and_portable_pivots_agree_to_the_bit() {
        let mut r = crate::rng::SplitMix64::new(9);
        let m = Matrix::from_fn(23, |_, _| r.next_f64()).normalized();
        let mut fast = Maximin::at_support(&m, &[0]).expect("a one-policy basis is nonsingular");
        let mut plain = fast.clone();
        for (row, slot) in [(0, 0), (3, 5), (7, 2), (11, 19), (3, 1)] {
            fast.pivot(row, slot);
            plain.pivot_portable(row, slot);
            assert_eq!(fast.a, plain.a);
            assert_eq!(fast.basis, plain.basis);
        }
    }
}
