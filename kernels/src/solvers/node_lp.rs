//! The node LPs of general-sum `mene`'s branch and bound on one dense bounded tableau.
//!
//! Every node LP is the root LP `σ ∈ Δ, v ∈ [0, 1], u_k − v + s_k = 0, s_k ∈ [0, 1]` with some
//! bounds tightened: deciding k IN fixes its slack at 0 (`u_k = v`), deciding it OUT fixes
//! `σ_k = 0` and asks `s_k ≥ ε`. So a child is its parent with one or two bound changes, and
//! the parent's basis stays dual feasible (the LP has no objective: any basis is), so a few
//! bounded dual simplex pivots re-establish feasibility. A general LP library pays for sparse
//! refactorisations on every added constraint; here a node costs a few dense pivots.
//!
//! Only feasibility matters to the search, and only an *infeasible* verdict can cost it an
//! equilibrium (the node is pruned). So an infeasible verdict is certified: the offending
//! tableau row gives multipliers y (the row of B⁻¹), and `y·A x = y·b` is checked against the
//! variable bounds on the original data, with a margin. A verdict that cannot be certified,
//! or a run out of pivots, is `Err(Trouble)` and the caller solves the node another way.

use crate::matrix::Matrix;

/// Below this magnitude a tableau entry does not qualify as a pivot.
const PIVOT_TOL: f64 = 1e-9;
/// A basic variable this far outside its bounds counts as infeasible (payoffs are range
/// normalised; far below the search's strictness margin of 1e-7).
const FEAS_TOL: f64 = 1e-10;

/// The tableau could not decide the node: too many pivots, or an infeasibility it could not
/// certify.
#[derive(Debug)]
pub(crate) struct Trouble;

/// Variables: σ_j = j (0..n), v = n, s_k = n + 1 + k, s_Σ = 2n + 1 (the slack of `Σσ = 1`,
/// fixed at 0). Rows: k < n reads `Σ_j M[k,j] σ_j − v + s_k = 0`, row n reads `Σσ + s_Σ = 1`.
#[derive(Clone, Debug)]
pub(crate) struct NodeLp {
    n: usize,
    /// B⁻¹A, rows × cols, row-major.
    t: Vec<f64>,
    /// The basic variable of each row.
    basis: Vec<usize>,
    /// Each variable's row when basic.
    row_of: Vec<Option<usize>>,
    /// Every variable's value (nonbasic ones sit at a bound).
    x: Vec<f64>,
    lo: Vec<f64>,
    hi: Vec<f64>,
}

impl NodeLp {
    /// The root LP of the range-normalised `m`, not yet solved.
    pub(crate) fn root(m: &Matrix) -> NodeLp {
        let n = m.n();
        let (rows, cols) = (n + 1, 2 * n + 2);
        let mut t = vec![0.0; rows * cols];
        for k in 0..n {
            let row = &mut t[k * cols..(k + 1) * cols];
            row[..n].copy_from_slice(m.row(k));
            row[n] = -1.0;
            row[n + 1 + k] = 1.0;
        }
        let last = &mut t[n * cols..];
        last[..n].fill(1.0);
        last[2 * n + 1] = 1.0;
        // Every variable is bounded, so that every infeasibility can be certified: the slacks
        // `s_k = v − u_k` are at most 1 anyway (v ≤ 1, u_k ≥ 0 on a normalised matrix).
        let lo = vec![0.0; cols];
        let mut hi = vec![1.0; cols];
        hi[2 * n + 1] = 0.0;
        // All slacks basic (B = I); σ and v at 0, so s_k = 0 and s_Σ = 1 (infeasible).
        let mut x = vec![0.0; cols];
        x[2 * n + 1] = 1.0;
        let mut row_of = vec![None; cols];
        let basis: Vec<usize> = (0..rows).map(|r| n + 1 + r).collect();
        for (r, &b) in basis.iter().enumerate() {
            row_of[b] = Some(r);
        }
        NodeLp {
            n,
            t,
            basis,
            row_of,
            x,
            lo,
            hi,
        }
    }

    fn cols(&self) -> usize {
        2 * self.n + 2
    }

    pub(crate) fn sigma(&self) -> Vec<f64> {
        self.x[..self.n].to_vec()
    }

    pub(crate) fn v(&self) -> f64 {
        self.x[self.n]
    }

    /// Decides strategy k IN: `u_k = v`.
    pub(crate) fn set_in(&mut self, k: usize) {
        self.set_bounds(self.n + 1 + k, 0.0, 0.0);
    }

    /// Decides strategy k OUT: `σ_k = 0` and `u_k ≤ v − margin`.
    pub(crate) fn set_out(&mut self, k: usize, margin: f64) {
        self.set_bounds(k, 0.0, 0.0);
        self.set_bounds(self.n + 1 + k, margin, 1.0);
    }

    fn set_bounds(&mut self, var: usize, lo: f64, hi: f64) {
        self.lo[var] = lo;
        self.hi[var] = hi;
        if self.row_of[var].is_none() {
            // A nonbasic variable moves to its new bound; the basic ones follow.
            let to = self.x[var].clamp(lo, hi);
            self.shift(var, to);
        }
    }

    /// Moves nonbasic `var` to value `to`, updating the basic variables.
    #[inline(always)]
    fn shift(&mut self, var: usize, to: f64) {
        let d = to - self.x[var];
        if d != 0.0 {
            let cols = self.cols();
            for (r, &b) in self.basis.iter().enumerate() {
                self.x[b] -= self.t[r * cols + var] * d;
            }
            self.x[var] = to;
        }
    }

    /// Bounded dual simplex to a feasible basis: `Ok(true)` feasible, `Ok(false)` certified
    /// infeasible. Largest-pivot choices first; if they have not finished within a budget
    /// (they can cycle), Bland's smallest-index rule, which cannot.
    ///
    /// On x86-64 with AVX2 the same code is compiled for 4-wide vectors: the same operations
    /// element by element (no fused multiply-add), so the same bits and the same search.
    pub(crate) fn solve(&mut self, m: &Matrix) -> Result<bool, Trouble> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { self.solve_avx2(m) };
        }
        self.solve_portable(m)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn solve_avx2(&mut self, m: &Matrix) -> Result<bool, Trouble> {
        self.solve_portable(m)
    }

    #[inline(always)]
    fn solve_portable(&mut self, m: &Matrix) -> Result<bool, Trouble> {
        let rows = self.n + 1;
        let fast = 4 * rows + 40;
        for pivots in 0..fast + 20 * rows + 200 {
            let bland = pivots >= fast;
            let Some((r, target)) = self.leaving(bland) else {
                return Ok(true);
            };
            match self.entering(r, target, bland) {
                Some(j) => self.pivot(r, j, target),
                None => return self.certify(m, r),
            }
        }
        Err(Trouble)
    }

    /// An infeasible basic variable's row and the bound it must reach: the most violated one,
    /// or under Bland's rule the smallest variable index.
    #[inline(always)]
    fn leaving(&self, bland: bool) -> Option<(usize, f64)> {
        let mut best: Option<(usize, f64, f64)> = None;
        for (r, &b) in self.basis.iter().enumerate() {
            let (x, lo, hi) = (self.x[b], self.lo[b], self.hi[b]);
            let (violation, target) = if x < lo - FEAS_TOL {
                (lo - x, lo)
            } else if x > hi + FEAS_TOL {
                (x - hi, hi)
            } else {
                continue;
            };
            let better = match best {
                None => true,
                Some((rb, vb, _)) => {
                    if bland {
                        b < self.basis[rb]
                    } else {
                        violation > vb
                    }
                }
            };
            if better {
                best = Some((r, violation, target));
            }
        }
        best.map(|(r, _, target)| (r, target))
    }

    /// A nonbasic variable that can move row r's basic variable towards `target`: the largest
    /// entry (for stability), or under Bland's rule the smallest index.
    #[inline(always)]
    fn entering(&self, r: usize, target: f64, bland: bool) -> Option<usize> {
        let cols = self.cols();
        let row = &self.t[r * cols..(r + 1) * cols];
        // x_B = β − T x_N: raising x_B needs T < 0 with x_j able to rise, or T > 0 with x_j
        // able to fall (and the reverse to lower it).
        let raise = target > self.x[self.basis[r]];
        let mut best: Option<(usize, f64)> = None;
        for (j, &a) in row.iter().enumerate() {
            if self.row_of[j].is_some() || a.abs() <= PIVOT_TOL {
                continue;
            }
            let can_rise = self.x[j] < self.hi[j];
            let can_fall = self.x[j] > self.lo[j];
            let ok = if raise {
                (a < 0.0 && can_rise) || (a > 0.0 && can_fall)
            } else {
                (a > 0.0 && can_rise) || (a < 0.0 && can_fall)
            };
            if !ok {
                continue;
            }
            if bland {
                return Some(j);
            }
            if best.is_none_or(|(_, b)| a.abs() > b) {
                best = Some((j, a.abs()));
            }
        }
        best.map(|(j, _)| j)
    }

    /// Enters `j` in row r, moving it so that the leaving variable lands on `target`.
    #[inline(always)]
    fn pivot(&mut self, r: usize, j: usize, target: f64) {
        let cols = self.cols();
        let leaving = self.basis[r];
        let p = self.t[r * cols + j];
        // x_leaving changes by −p·Δ when x_j changes by Δ.
        let delta = (self.x[leaving] - target) / p;
        let to = self.x[j] + delta;
        self.shift(j, to);
        self.x[leaving] = target;
        let (before, rest) = self.t.split_at_mut(r * cols);
        let (row, after) = rest.split_at_mut(cols);
        let inv = 1.0 / p;
        for v in row.iter_mut() {
            *v *= inv;
        }
        let eliminate = |other: &mut [f64]| {
            let f = other[j];
            if f != 0.0 {
                for (o, &v) in other.iter_mut().zip(row.iter()) {
                    *o -= f * v;
                }
            }
        };
        before.chunks_mut(cols).for_each(eliminate);
        after.chunks_mut(cols).for_each(eliminate);
        self.basis[r] = j;
        self.row_of[j] = Some(r);
        self.row_of[leaving] = None;
    }

    /// Row r's basic variable cannot reach its bound: confirm on the original data. With y =
    /// row r of B⁻¹ (the slack columns of the tableau, which are B⁻¹'s columns), every
    /// feasible x satisfies `(yᵀA) x = yᵀb`; if yᵀb lies outside the range of `(yᵀA) x` over
    /// the variable bounds, no x does.
    fn certify(&self, m: &Matrix, r: usize) -> Result<bool, Trouble> {
        let n = self.n;
        let cols = self.cols();
        let y = &self.t[r * cols + n + 1..(r + 1) * cols];
        // yᵀA column by column: σ_j → Σ_k y_k M[k,j] + y_n; v → −Σ_{k<n} y_k; slacks → y.
        let mut c = vec![0.0; cols];
        for (k, &yk) in y[..n].iter().enumerate() {
            if yk != 0.0 {
                for (cj, &mkj) in c[..n].iter_mut().zip(m.row(k)) {
                    *cj += yk * mkj;
                }
            }
        }
        for cj in &mut c[..n] {
            *cj += y[n];
        }
        c[n] = -y[..n].iter().sum::<f64>();
        c[n + 1..].copy_from_slice(y);
        let rhs = y[n];
        let (mut min, mut max) = (0.0, 0.0);
        let mut scale = rhs.abs();
        for (j, &cj) in c.iter().enumerate() {
            let (a, b) = (cj * self.lo[j], cj * self.hi[j]);
            min += a.min(b);
            max += a.max(b);
            scale += a.abs().max(b.abs());
        }
        // Only rounding in the sums above separates a feasible row from these tests: y itself
        // may be as inaccurate as it likes.
        let margin = 1e-11 * scale.max(1.0);
        if rhs > max + margin || rhs < min - margin {
            Ok(false)
        } else {
            Err(Trouble)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::NodeLp;
    use crate::matrix::Matrix;

    /// The root LP is feasible and its point satisfies every constraint.
    #[test]
    fn root_point_is_feasible() {
        let mut r = crate::rng::SplitMix64::new(4);
        let m = Matrix::from_fn(9, |_, _| r.next_f64()).normalized();
        let mut lp = NodeLp::root(&m);
        assert!(lp.solve(&m).unwrap());
        let (s, v) = (lp.sigma(), lp.v());
        assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!(s.iter().all(|&x| x >= -1e-12));
        for u in m.mul_vec(&s) {
            assert!(u <= v + 1e-12);
        }
    }

    /// Random decision sequences on random games (some with ties), each node solved warm from
    /// its parent: the verdict is microlp's on the same constraints built from scratch, and a
    /// feasible point satisfies them.
    #[test]
    fn verdicts_agree_with_microlp() {
        use microlp::{ComparisonOp, LinearExpr, OptimizationDirection, Problem};
        let margin = 1e-7;
        let mut r = crate::rng::SplitMix64::new(12);
        let (mut infeasible, mut feasible) = (0, 0);
        for case in 0..60 {
            let n = 3 + case % 10;
            let raw = Matrix::from_fn(n, |_, _| r.next_f64());
            let m = if case % 3 == 0 {
                Matrix::from_fn(n, |i, j| (raw[(i, j)] * 3.0).round())
            } else {
                raw
            }
            .normalized();
            let mut lp = NodeLp::root(&m);
            assert!(lp.solve(&m).unwrap());
            let mut order: Vec<usize> = (0..n).collect();
            for k in (1..n).rev() {
                order.swap(k, r.below(k + 1));
            }
            let mut decided: Vec<(usize, bool)> = Vec::new();
            for &k in &order {
                let inside = r.next_f64() < 0.6;
                if inside {
                    lp.set_in(k);
                } else {
                    lp.set_out(k, margin);
                }
                decided.push((k, inside));
                let verdict = lp.solve(&m).expect("decided");
                // The same node from scratch.
                let mut p = Problem::new(OptimizationDirection::Minimize);
                let x: Vec<_> = (0..n).map(|_| p.add_var(0.0, (0.0, 1.0))).collect();
                let v = p.add_var(0.0, (0.0, 1.0));
                p.add_constraint(
                    x.iter().map(|&s| (s, 1.0)).collect::<LinearExpr>(),
                    ComparisonOp::Eq,
                    1.0,
                );
                let gap = |k: usize| {
                    let mut e: LinearExpr = (0..n).map(|j| (x[j], m[(k, j)])).collect();
                    e.add(v, -1.0);
                    e
                };
                for j in 0..n {
                    p.add_constraint(gap(j), ComparisonOp::Le, 0.0);
                }
                for &(j, inside) in &decided {
                    if inside {
                        p.add_constraint(gap(j), ComparisonOp::Ge, 0.0);
                    } else {
                        p.add_constraint([(x[j], 1.0)], ComparisonOp::Eq, 0.0);
                        p.add_constraint(gap(j), ComparisonOp::Le, -margin);
                    }
                }
                let reference = p.solve().is_ok();
                assert_eq!(verdict, reference, "case {case}, decisions {decided:?}");
                if !verdict {
                    infeasible += 1;
                    break;
                }
                feasible += 1;
                let (s, v) = (lp.sigma(), lp.v());
                let u = m.mul_vec(&s);
                assert!((s.iter().sum::<f64>() - 1.0).abs() < 1e-9);
                for &(j, inside) in &decided {
                    if inside {
                        assert!((u[j] - v).abs() < 1e-9);
                    } else {
                        assert!(s[j] == 0.0 && u[j] <= v - margin + 1e-9);
                    }
                }
                assert!(u.iter().all(|&uj| uj <= v + 1e-9) && s.iter().all(|&x| x >= -1e-9));
            }
        }
        // Both verdicts occur often enough for the comparison to mean something.
        assert!(
            infeasible >= 15 && feasible >= 100,
            "{infeasible} / {feasible}"
        );
    }

    /// The AVX2 build and the portable one reach the same point to the bit (on a CPU without
    /// AVX2 both calls take the portable route).
    #[test]
    fn vector_and_portable_builds_agree_to_the_bit() {
        let mut r = crate::rng::SplitMix64::new(21);
        let m = Matrix::from_fn(23, |_, _| r.next_f64()).normalized();
        let (mut fast, mut plain) = (NodeLp::root(&m), NodeLp::root(&m));
        for k in [3, 9, 14, 20] {
            fast.set_in(k);
            plain.set_in(k);
            assert_eq!(fast.solve(&m).unwrap(), plain.solve_portable(&m).unwrap());
            let bits = |lp: &NodeLp| lp.x.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&plain));
            assert_eq!(fast.t, plain.t);
        }
    }

    /// Rock–paper–scissors has one equilibrium (uniform): with all three IN the point is
    /// uniform, and with two IN the third cannot be OUT (certified infeasible).
    #[test]
    fn decisions_in_rock_paper_scissors() {
        let m = Matrix::from_rows(&[
            vec![0.5, 0.0, 1.0],
            vec![1.0, 0.5, 0.0],
            vec![0.0, 1.0, 0.5],
        ])
        .unwrap();
        for k in 0..3 {
            let mut lp = NodeLp::root(&m);
            assert!(lp.solve(&m).unwrap());
            for i in (0..3).filter(|&i| i != k) {
                lp.set_in(i);
                assert!(lp.solve(&m).unwrap(), "IN {i} alone is feasible");
            }
            let mut all_in = lp.clone();
            lp.set_out(k, 1e-7);
            assert!(!lp.solve(&m).unwrap(), "OUT {k} must be infeasible");
            all_in.set_in(k);
            assert!(all_in.solve(&m).unwrap());
            for x in all_in.sigma() {
                assert!((x - 1.0 / 3.0).abs() < 1e-9, "{:?}", all_in.sigma());
            }
        }
    }
}
