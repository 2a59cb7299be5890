//! `mene`: the maximum-Shannon-entropy symmetric Nash equilibrium, exactly.
//!
//! Every symmetric NE σ lies in the polytope of its best-response set B = BR(σ):
//! `P(B) = {σ ∈ Δ : supp σ ⊆ B, (Mσ)_k = v for k ∈ B, (Mσ)_k ≤ v for k ∉ B}`,
//! and every point of any `P(B)` is a NE. So the Nash set is the union of the `P(B)` over the
//! best-response sets that occur, and the max-entropy NE is the best of the per-polytope
//! max-entropy points ([`crate::maxent`]).
//!
//! * Constant-sum games (`M + Mᵀ = c`): the Nash set is the single polytope `{σ : Mσ ≤ c/2}`.
//!   Its structure (zero coordinates, implicit equalities) is read off one maximin LP when
//!   that solution's support equals its tight rows (see `structure_from`), so `mene` costs
//!   about one LP plus a Newton solve; otherwise the general relative-interior LP decides.
//! * General-sum: a depth-first branch and bound over the best-response sets. Each strategy is
//!   decided IN (a best response: `u_k = v`) or OUT (not one: `σ_k = 0`, `u_k ≤ v − ε`), so
//!   every NE belongs to exactly one leaf, its own B. A node is pruned when its LP is
//!   infeasible, when conditional dominance rules it out, or when even all its undecided
//!   strategies could not beat the best entropy found (entropy on `P(B)` is at most `ln |B|`).
//!   A child's LP is its parent's with one or two bounds tightened, re-solved by a few dense
//!   dual simplex pivots from the parent's basis (`node_lp`; microlp where that cannot
//!   decide a node).

use microlp::{ComparisonOp, LinearExpr, OptimizationDirection, Problem, SolveOutcome, Variable};

use super::node_lp::NodeLp as Dense;
use super::tableau::{is_index_set, Maximin};
use crate::lstsq::Columns;
use crate::matrix::Matrix;
use crate::maxent::{max_entropy, max_entropy_within, MaxEnt};
use crate::polytope::{Polytope, RelativeInterior, Row};
use crate::KernelError;

/// Relative tolerance for recognising a constant-sum game.
pub const CONSTANT_SUM_TOL: f64 = 1e-9;
/// Largest constant-sum game solved cold on the dense tableau (see [`mene_hinted`]).
const COLD_TABLEAU_MAX: usize = 128;

/// Strict margin (in units of the payoff range) by which a non-best-response is worse.
const BR_MARGIN: f64 = 1e-7;

/// Search nodes after which general-sum `mene` stops and returns the best equilibrium found
/// (it always continues until it has found one).
/// Random 30-policy games need about 8,000; larger sparse leagues can need exponentially many.
pub const DEFAULT_NODE_LIMIT: usize = 20_000;

/// A `mene` result: σ, and whether it is proven to be the max-entropy equilibrium (false when
/// the search budget ran out; σ is then the highest-entropy equilibrium found).
#[derive(Clone, Debug, PartialEq)]
pub struct MeneOutcome {
    pub sigma: Vec<f64>,
    pub exact: bool,
    pub nodes: usize,
}

/// Max-entropy symmetric NE of `m`, with the default search budget.
pub fn mene(m: &Matrix) -> Result<Vec<f64>, KernelError> {
    Ok(mene_budgeted(m, DEFAULT_NODE_LIMIT)?.sigma)
}

/// Max-entropy symmetric NE of `m`; general-sum search stops after `node_limit` nodes.
pub fn mene_budgeted(m: &Matrix, node_limit: usize) -> Result<MeneOutcome, KernelError> {
    mene_hinted(m, node_limit, None)
}

/// [`mene_budgeted`], starting from the support `hint` (sorted indices; e.g. the equilibrium's
/// support in the previous epoch). In a constant-sum game the hint is checked directly, else
/// the maximin tableau is re-optimised from its basis ([`equilibrium_near`]) instead of a
/// cold LP. The result is bit for bit the one without the hint: either path ends in
/// [`unique_equilibrium_on`] on the same support, and when that does not apply the hint is
/// not used.
pub fn mene_hinted(
    m: &Matrix,
    node_limit: usize,
    hint: Option<&[usize]>,
) -> Result<MeneOutcome, KernelError> {
    let n = m.n();
    if n == 0 {
        return Ok(MeneOutcome {
            sigma: vec![],
            exact: true,
            nodes: 0,
        });
    }
    let m = m.normalized();
    if let Some(c) = m.constant_sum(CONSTANT_SUM_TOL) {
        // Without a hint, the tableau starts from the policy best against uniform play: a
        // cold solve in dense pivots (most of Level 3's 2^n subgames), with microlp's LP only
        // where the equilibrium is not unique. Beyond `COLD_TABLEAU_MAX` policies microlp's
        // sparse LP is the faster cold start (solvers bench: 0.08–0.12 of its time up to 100
        // policies, 1.27 at 200).
        let cold_start = || {
            (n <= COLD_TABLEAU_MAX).then(|| {
                let sums: Vec<f64> = (0..n).map(|k| m.row(k).iter().sum()).collect();
                (0..n)
                    .max_by(|&a, &b| sums[a].total_cmp(&sums[b]).then(b.cmp(&a)))
                    .expect("n > 0")
            })
        };
        let sigma = match hint {
            Some(h) => equilibrium_near(&m, c / 2.0, h),
            None => cold_start().and_then(|k| equilibrium_near(&m, c / 2.0, &[k])),
        };
        if let Some(sigma) = sigma {
            return Ok(MeneOutcome {
                sigma,
                exact: true,
                nodes: 0,
            });
        }
        let maximin = crate::solvers::nash_lp(&m)?;
        let sigma = constant_sum_mene(&m, c / 2.0, &maximin)?;
        return Ok(MeneOutcome {
            sigma,
            exact: true,
            nodes: 0,
        });
    }
    general_sum_mene(&m, node_limit, true)
}

/// The branch and bound of a range-normalised general-sum `m`, with its node LPs on the dense
/// tableau (`dense`) or all on microlp (the fallback's own path, for tests).
fn general_sum_mene(
    m: &Matrix,
    node_limit: usize,
    dense: bool,
) -> Result<MeneOutcome, KernelError> {
    let n = m.n();
    let mut search = Search::new(m, node_limit);
    let root = if dense {
        search.root()?
    } else {
        outcome(search.problem.solve())?
    };
    let root = root.ok_or_else(|| {
        KernelError::Numerical("mene: the equilibrium LP is infeasible (LP failure)".into())
    })?;
    let mut state = vec![Decision::Free; n];
    search.dfs(&mut state, root)?;
    let best = search.best.ok_or_else(|| {
        KernelError::Numerical("mene: no symmetric equilibrium found (LP failure)".into())
    })?;
    Ok(MeneOutcome {
        sigma: crate::matrix::clean_simplex(best.x[..n].to_vec()),
        exact: !search.exhausted,
        nodes: search.nodes,
    })
}

/// `mene` of the range-normalised `m`, with constant sum `total`, without policy `c`, read off `sigma` = `mene(m)` where that is exact, so
/// leave-one-out analyses skip a solve. In a constant-sum game the equilibria form one convex
/// polytope `{x : Mx ≤ v}`. Dropping `c` removes its row's constraint and fixes `x_c = 0`;
/// if σ has no mass on `c` and `c` is strictly worse than `v` against σ, that constraint is
/// slack near σ, so σ is a local, hence (strict concavity) the global, entropy maximum of the
/// smaller game too. `None` when this does not apply: solve the subgame.
pub(crate) fn mene_without(m: &Matrix, total: f64, sigma: &[f64], c: usize) -> Option<Vec<f64>> {
    let payoff_c: f64 = (0..m.n()).map(|j| m[(c, j)] * sigma[j]).sum();
    if sigma[c] != 0.0 || payoff_c >= total / 2.0 - BR_MARGIN {
        return None;
    }
    Some(
        sigma
            .iter()
            .enumerate()
            .filter(|&(k, _)| k != c)
            .map(|(_, &x)| x)
            .collect(),
    )
}

/// Tolerance (range-normalised payoff, and probability) for reading the equilibrium set's
/// structure off one maximin solution.
const STRUCTURE_TOL: f64 = 1e-9;

/// Margin (range-normalised payoff, and probability) by which a hinted support must hold for
/// [`unique_equilibrium_on`] to accept it: far above the LP's error, so that whenever a hint
/// passes, the LP's solution has exactly that support and the cold path takes the same route.
const HINT_MARGIN: f64 = 1e-7;

/// The equilibrium of a range-normalised constant-sum game with value `v` when it is unique
/// and its support is exactly `support` (sorted indices), else `None`.
///
/// With `A = M − v` antisymmetric, every equilibrium y satisfies `(A y)_k = 0` on the support
/// of every other (see [`structure_from`]), so if x solves `A_SS x = 0, Σx = 1` with x > 0 on
/// S and `(A x)_k < 0` off S, and that system has full column rank, x is the only equilibrium,
/// hence the max-entropy one. Accepting only with [`HINT_MARGIN`] to spare makes the answer
/// depend on the game alone, whichever way the support was guessed.
pub(crate) fn unique_equilibrium_on(m: &Matrix, v: f64, support: &[usize]) -> Option<Vec<f64>> {
    let n = m.n();
    let s = support.len();
    if !is_index_set(support, n) {
        return None;
    }
    // Gathered row by row (contiguous reads); the last row is the sum constraint's ones.
    let rows = s + 1;
    let mut a = vec![1.0; rows * s];
    for (r, &i) in support.iter().enumerate() {
        let row = m.row(i);
        for (c, &j) in support.iter().enumerate() {
            a[c * rows + r] = row[j] - v;
        }
    }
    let a = Columns::from_column_major(rows, s, a);
    let mut rhs = vec![0.0; s + 1];
    rhs[s] = 1.0;
    let y = a.solve(rhs, STRUCTURE_TOL)?;
    if !y.iter().all(|&yk| yk >= HINT_MARGIN) {
        return None;
    }
    let mut x = vec![0.0; n];
    for (&k, &yk) in support.iter().zip(y.iter()) {
        x[k] = yk;
    }
    let x = crate::matrix::clean_simplex(x);
    let mut next = support.iter().peekable();
    for (k, mx) in m.mul_vec(&x).into_iter().enumerate() {
        let gap = mx - v;
        let on = next.next_if_eq(&&k).is_some();
        if (on && gap.abs() > STRUCTURE_TOL) || (!on && gap > -HINT_MARGIN) {
            return None;
        }
    }
    Some(x)
}

/// The unique equilibrium near the support `hint` (a nearby game's, e.g. the previous
/// epoch's): on the hint itself when the support has not moved (one small least-squares
/// solve), else by re-optimising the maximin tableau from the hint's basis. Either way the
/// answer is [`unique_equilibrium_on`]'s on the game's own support, so it is the cold path's.
pub(crate) fn equilibrium_near(m: &Matrix, v: f64, hint: &[usize]) -> Option<Vec<f64>> {
    unique_equilibrium_on(m, v, hint).or_else(|| equilibrium_from(m, v, hint))
}

/// Pivots allowed from a hinted start before the cold LP takes over.
fn pivot_budget(n: usize) -> usize {
    2 * n + 20
}

/// The equilibrium found by re-optimising the maximin tableau from basis `B(start)`, when it
/// is unique ([`unique_equilibrium_on`] decides, so the answer is the cold path's).
pub(crate) fn equilibrium_from(m: &Matrix, v: f64, start: &[usize]) -> Option<Vec<f64>> {
    let mut t = Maximin::at_support(m, start)?;
    if !t.optimize(pivot_budget(m.n())) {
        return None;
    }
    unique_equilibrium_on(m, v, &t.support(None))
}

/// `mene` of the subgame without policy `removed` (`sub`, range-normalised) by re-optimising
/// `t`, the full game's tableau, moved to the subgame's basis at `start` (subgame indices; see
/// [`Maximin::rebased_without`]).
pub(crate) fn subgame_from(
    sub: &Matrix,
    v: f64,
    t: &Maximin,
    removed: usize,
    start: &[usize],
) -> Option<Vec<f64>> {
    let mut t = t.rebased_without(removed, start)?;
    if !t.optimize(pivot_budget(sub.n())) {
        return None;
    }
    unique_equilibrium_on(sub, v, &t.support(Some(removed)))
}

/// `mene` of the subgame of `t`'s game without policy `removed` (`sub`, range-normalised),
/// from `t`'s optimal tableau (see [`Maximin::without`]).
pub(crate) fn subgame_equilibrium(
    sub: &Matrix,
    v: f64,
    t: &Maximin,
    removed: usize,
) -> Option<Vec<f64>> {
    let t = t.without(removed, pivot_budget(sub.n()))?;
    unique_equilibrium_on(sub, v, &t.support(Some(removed)))
}

/// Indices of σ's positive entries: the hint for the next solve of a similar game.
pub fn support_of(sigma: &[f64]) -> Vec<usize> {
    (0..sigma.len()).filter(|&k| sigma[k] > 0.0).collect()
}

/// The max-entropy equilibrium of a range-normalised constant-sum game with value `v`, given
/// one maximin solution: a unique equilibrium on its support is solved for directly
/// ([`unique_equilibrium_on`]); otherwise the polytope's structure is read off the solution
/// where possible ([`structure_from`]), else found by the relative-interior LP.
pub(crate) fn constant_sum_mene(
    m: &Matrix,
    v: f64,
    maximin: &[f64],
) -> Result<Vec<f64>, KernelError> {
    let raw_support: Vec<usize> = (0..m.n()).filter(|&k| maximin[k] > STRUCTURE_TOL).collect();
    if let Some(x) = unique_equilibrium_on(m, v, &raw_support) {
        return Ok(x);
    }
    let polytope = constant_sum_polytope(m, v);
    let best = match structure_from(m, v, maximin) {
        Some(ri) => max_entropy_within(&polytope, &ri)?,
        None => max_entropy(&polytope)?,
    };
    Ok(crate::matrix::clean_simplex(best.x[..m.n()].to_vec()))
}

/// A relative interior of the constant-sum polytope `{x ∈ Δ : Mx ≤ v}` from one maximin
/// solution x*, when its structure can be read off x*; `None` otherwise (then the general
/// relative-interior LP, about twice the size, decides).
///
/// `M − v` is antisymmetric, so for equilibria x, y: `yᵀ(M − v)x = 0`, and every strategy in
/// some equilibrium's support is a best response to *all* equilibria: an implicit equality.
/// Conversely a strategy in no support is strictly worse against some equilibrium (strict
/// complementarity). Hence support(x*) ⊆ essential ⊆ tight(x*); when support(x*) = tight(x*)
/// (always, for a game with a unique equilibrium), the essential strategies are exactly
/// support(x*): those rows are the implicit equalities, the others the coordinates fixed at 0,
/// and x* is strictly inside everything else.
fn structure_from(m: &Matrix, v: f64, raw: &[f64]) -> Option<RelativeInterior> {
    let n = m.n();
    let support: Vec<bool> = raw.iter().map(|&xi| xi > STRUCTURE_TOL).collect();
    let point = crate::matrix::clean_simplex(
        raw.iter()
            .zip(&support)
            .map(|(&xi, &s)| if s { xi } else { 0.0 })
            .collect(),
    );
    let mut tight = Vec::with_capacity(n);
    for k in 0..n {
        let gap: f64 = (0..n).map(|j| m[(k, j)] * point[j]).sum::<f64>() - v;
        if gap > STRUCTURE_TOL {
            return None;
        }
        tight.push(gap >= -STRUCTURE_TOL);
    }
    if support != tight {
        return None;
    }
    Some(RelativeInterior {
        point,
        implicit: support.clone(),
        zero: support.iter().map(|s| !s).collect(),
    })
}

/// `{σ ∈ Δ : Mσ ≤ v}` for a constant-sum game with value `v`.
pub(crate) fn constant_sum_polytope(m: &Matrix, v: f64) -> Polytope {
    let n = m.n();
    Polytope {
        dim: n,
        n_entropy: n,
        eq: vec![Row::new(vec![1.0; n], 1.0)],
        ineq: (0..n).map(|k| Row::new(m.row(k).to_vec(), v)).collect(),
    }
}

/// `P(B)` over coordinates `(σ_0..σ_{n−1}, v)`, on a range-normalised matrix.
pub fn equilibrium_polytope(m: &Matrix, br: &[bool]) -> Polytope {
    let n = m.n();
    let mut eq = vec![Row::new(
        (0..=n).map(|i| if i < n { 1.0 } else { 0.0 }).collect(),
        1.0,
    )];
    let mut ineq = Vec::new();
    for k in 0..n {
        let mut coef: Vec<f64> = m.row(k).to_vec();
        coef.push(-1.0);
        if br[k] {
            eq.push(Row::new(coef, 0.0));
        } else {
            ineq.push(Row::new(coef, 0.0));
            // σ_k = 0 off the best-response set.
            let mut z = vec![0.0; n + 1];
            z[k] = 1.0;
            eq.push(Row::new(z, 0.0));
        }
    }
    Polytope {
        dim: n + 1,
        n_entropy: n,
        eq,
        ineq,
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Decision {
    Free,
    In,
    Out,
}

/// A node LP: σ ∈ Δ, v ∈ [0, 1], `u_k ≤ v` for all k, plus the node's decisions. On the
/// dense tableau ([`Dense`]); a node it cannot decide is solved by microlp, and so are its
/// descendants.
#[derive(Clone)]
enum NodeLp {
    Dense(Dense),
    Micro(microlp::Solution),
}

struct Search<'a> {
    m: &'a Matrix,
    sigma: Vec<Variable>,
    v: Variable,
    problem: Problem,
    best: Option<MaxEnt>,
    nodes: usize,
    node_limit: usize,
    exhausted: bool,
}

fn outcome(r: Result<SolveOutcome, microlp::Error>) -> Result<Option<NodeLp>, KernelError> {
    match r {
        Ok(SolveOutcome::Solution(s)) => Ok(Some(NodeLp::Micro(s))),
        Ok(SolveOutcome::Interrupted(_)) => {
            Err(KernelError::Numerical("mene: LP interrupted".into()))
        }
        Err(microlp::Error::Infeasible) => Ok(None),
        Err(e) => Err(KernelError::Numerical(format!("mene: LP solver: {e}"))),
    }
}

impl<'a> Search<'a> {
    fn new(m: &'a Matrix, node_limit: usize) -> Self {
        let n = m.n();
        let mut problem = Problem::new(OptimizationDirection::Minimize);
        let sigma: Vec<Variable> = (0..n).map(|_| problem.add_var(0.0, (0.0, 1.0))).collect();
        let v = problem.add_var(0.0, (0.0, 1.0));
        problem.add_constraint(
            sigma.iter().map(|&s| (s, 1.0)).collect::<LinearExpr>(),
            ComparisonOp::Eq,
            1.0,
        );
        let mut search = Search {
            m,
            sigma,
            v,
            problem,
            best: None,
            nodes: 0,
            node_limit,
            exhausted: false,
        };
        for k in 0..n {
            let gap = search.gap(k);
            search.problem.add_constraint(gap, ComparisonOp::Le, 0.0);
        }
        search
    }

    /// `u_k − v` as a linear expression.
    fn gap(&self, k: usize) -> LinearExpr {
        let mut e: LinearExpr = (0..self.m.n())
            .filter(|&j| self.m[(k, j)] != 0.0)
            .map(|j| (self.sigma[j], self.m[(k, j)]))
            .collect();
        e.add(self.v, -1.0);
        e
    }

    fn root(&self) -> Result<Option<NodeLp>, KernelError> {
        let mut lp = Dense::root(self.m);
        match lp.solve(self.m) {
            Ok(true) => Ok(Some(NodeLp::Dense(lp))),
            Ok(false) => Ok(None),
            Err(_) => outcome(self.problem.solve()),
        }
    }

    /// The node LP of `state` built from scratch, retried in other orders on failure.
    fn cold(&self, state: &[Decision]) -> Result<Option<NodeLp>, KernelError> {
        crate::polytope::retry_reordered(|order| {
            let mut p = self.problem.clone();
            for k in order.perm(state.len()) {
                match state[k] {
                    Decision::Free => {}
                    Decision::In => p.add_constraint(self.gap(k), ComparisonOp::Ge, 0.0),
                    Decision::Out => {
                        p.add_constraint([(self.sigma[k], 1.0)], ComparisonOp::Eq, 0.0);
                        p.add_constraint(self.gap(k), ComparisonOp::Le, -BR_MARGIN);
                    }
                }
            }
            match outcome(p.solve())? {
                Some(lp) => Ok(Some(lp)),
                // Let the retry confirm infeasibility with another ordering.
                None => Err(KernelError::Infeasible),
            }
        })
        .or_else(|e| match e {
            KernelError::Infeasible => Ok(None),
            other => Err(other),
        })
    }

    /// The child LP of `parent` with strategy `k` decided `d` (`state` already holds `d`).
    /// Warm-started from the parent; on a numerical failure the node is solved cold.
    fn child(
        &self,
        parent: NodeLp,
        state: &[Decision],
        k: usize,
        d: Decision,
    ) -> Result<Option<NodeLp>, KernelError> {
        match self.warm_child(parent, k, d) {
            Err(KernelError::Numerical(_)) => self.cold(state),
            other => other,
        }
    }

    fn warm_child(&self, lp: NodeLp, k: usize, d: Decision) -> Result<Option<NodeLp>, KernelError> {
        let lp = match lp {
            NodeLp::Dense(mut lp) => {
                match d {
                    Decision::In => lp.set_in(k),
                    Decision::Out => lp.set_out(k, BR_MARGIN),
                    Decision::Free => unreachable!("children decide a strategy"),
                }
                return match lp.solve(self.m) {
                    Ok(true) => Ok(Some(NodeLp::Dense(lp))),
                    Ok(false) => Ok(None),
                    Err(_) => Err(KernelError::Numerical("mene: dense node LP".into())),
                };
            }
            NodeLp::Micro(lp) => lp,
        };
        match d {
            Decision::In => outcome(lp.add_constraint(self.gap(k), ComparisonOp::Ge, 0.0)),
            Decision::Out => {
                let Some(NodeLp::Micro(lp)) = outcome(lp.fix_var(self.sigma[k], 0.0))? else {
                    return Ok(None);
                };
                outcome(lp.add_constraint(self.gap(k), ComparisonOp::Le, -BR_MARGIN))
            }
            Decision::Free => unreachable!("children decide a strategy"),
        }
    }

    /// Can a NE in this node still beat the best entropy? Its support has at most
    /// |IN ∪ free| members, so its entropy is at most ln of that.
    fn may_improve(&self, state: &[Decision]) -> bool {
        let possible = state.iter().filter(|d| **d != Decision::Out).count();
        self.best
            .as_ref()
            .is_none_or(|b| possible as f64 > b.entropy.exp() + 1e-9)
    }

    /// Conditional strict dominance: with mass only on non-OUT columns, a strategy beaten by
    /// another non-OUT strategy on every such column (by the margin) is never a best response.
    /// Returns a free strategy that must be OUT, or `Err(())` if an IN one is dominated.
    fn forced_out(&self, state: &[Decision]) -> Result<Option<usize>, ()> {
        let m = self.m;
        let cols: Vec<usize> = (0..m.n()).filter(|&c| state[c] != Decision::Out).collect();
        for &k in &cols {
            let dominated = cols
                .iter()
                .any(|&j| j != k && cols.iter().all(|&c| m[(j, c)] >= m[(k, c)] + BR_MARGIN));
            if dominated {
                return match state[k] {
                    Decision::In => Err(()),
                    _ => Ok(Some(k)),
                };
            }
        }
        Ok(None)
    }

    fn dfs(&mut self, state: &mut [Decision], lp: NodeLp) -> Result<(), KernelError> {
        if !self.may_improve(state) || self.exhausted {
            return Ok(());
        }
        self.nodes += 1;
        // The budget ends a search only once it has an equilibrium to return.
        if self.nodes > self.node_limit && self.best.is_some() {
            self.exhausted = true;
            return Ok(());
        }
        match self.forced_out(state) {
            Err(()) => return Ok(()),
            Ok(Some(k)) => {
                state[k] = Decision::Out;
                if self.may_improve(state) {
                    if let Some(child) = self.child(lp, state, k, Decision::Out)? {
                        self.dfs(state, child)?;
                    }
                }
                state[k] = Decision::Free;
                return Ok(());
            }
            Ok(None) => {}
        }
        // Branch on the largest complementarity violation σ_k·|v − u_k| at the LP point.
        let (sigma, v) = match &lp {
            NodeLp::Dense(lp) => (lp.sigma(), lp.v()),
            NodeLp::Micro(lp) => (
                self.sigma.iter().map(|&s| lp.var_value(s)).collect(),
                lp.var_value(self.v),
            ),
        };
        let u = self.m.mul_vec(&sigma);
        let pick = (0..state.len())
            .filter(|&k| state[k] == Decision::Free)
            .max_by(|&a, &b| {
                (sigma[a] * (v - u[a]).abs()).total_cmp(&(sigma[b] * (v - u[b]).abs()))
            });
        let Some(k) = pick else {
            return self.leaf(state);
        };
        // The first child edits a copy of this node's LP; the last one takes it.
        let mut parent = Some(lp);
        for d in [Decision::In, Decision::Out] {
            state[k] = d;
            // The count bound needs no LP: check it before paying for the child's solve.
            if self.may_improve(state) {
                let lp = match d {
                    Decision::Out => parent.take(),
                    _ => parent.clone(),
                }
                .expect("the parent LP is taken only by the last child");
                if let Some(child) = self.child(lp, state, k, d)? {
                    self.dfs(state, child)?;
                }
            }
        }
        state[k] = Decision::Free;
        Ok(())
    }

    /// Every strategy decided: maximise entropy over `P(IN)`.
    fn leaf(&mut self, state: &[Decision]) -> Result<(), KernelError> {
        let br: Vec<bool> = state.iter().map(|d| *d == Decision::In).collect();
        let solved = match single_point(self.m, &br) {
            Some(Ok(point)) => Ok(point),
            Some(Err(())) => Err(KernelError::Infeasible),
            None => max_entropy(&equilibrium_polytope(self.m, &br)),
        };
        match solved {
            Ok(sol) => {
                if self
                    .best
                    .as_ref()
                    .is_none_or(|b| sol.entropy > b.entropy + 1e-12)
                {
                    self.best = Some(sol);
                }
                Ok(())
            }
            // The node LP accepted B within its tolerance but the exact polytope is empty.
            Err(KernelError::Infeasible) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Margin (range-normalised payoff, and probability) by which [`single_point`] must decide:
/// far above any solver tolerance, so that whatever it decides, the polytope LP would too.
const POINT_MARGIN: f64 = 1e-6;

/// `P(B)` when the best-response equations pin it to at most one point: `(Mσ)_k = v` for
/// k ∈ B, `Σσ = 1` and `σ = 0` off B, a square system in (σ_B, v). When that system is
/// well conditioned, `P(B)` is its solution if σ_B ≥ 0 and `(Mσ)_k ≤ v` off B, and empty
/// otherwise; `Some(Ok)` and `Some(Err)` say which, each only with [`POINT_MARGIN`] to spare.
/// `None` (a singular or ill-conditioned system, or a check too close to call) leaves it to
/// the polytope's own LP. Most leaves of a search are single points, and this costs one
/// small QR instead of an LP and a Newton solve.
fn single_point(m: &Matrix, br: &[bool]) -> Option<Result<MaxEnt, ()>> {
    let n = m.n();
    let b: Vec<usize> = (0..n).filter(|&k| br[k]).collect();
    let s = b.len();
    if s == 0 {
        return None;
    }
    // Unknowns σ_B then v; rows: k ∈ B, then the sum.
    let a = Columns::from_fn(s + 1, s + 1, |r, c| match (r < s, c < s) {
        (true, true) => m[(b[r], b[c])],
        (true, false) => -1.0,
        (false, true) => 1.0,
        (false, false) => 0.0,
    });
    let mut rhs = vec![0.0; s + 1];
    rhs[s] = 1.0;
    let y = a.solve(rhs, 1e-7)?;
    let mut x = vec![0.0; n + 1];
    for (&k, &yk) in b.iter().zip(&y) {
        x[k] = yk;
    }
    let v = y[s];
    x[n] = v;
    let sigma = &x[..n];
    let mut empty = false;
    for &yk in &y[..s] {
        if yk.abs() <= POINT_MARGIN {
            return None;
        }
        empty |= yk < 0.0;
    }
    for k in (0..n).filter(|&k| !br[k]) {
        let gap = m.row(k).iter().zip(sigma).map(|(p, q)| p * q).sum::<f64>() - v;
        if gap.abs() <= POINT_MARGIN {
            return None;
        }
        empty |= gap > 0.0;
    }
    if empty {
        return Some(Err(()));
    }
    let entropy = crate::matrix::entropy(sigma);
    Some(Ok(MaxEnt { x, entropy }))
}

/// Slow reference for tests and benchmarks: the largest entropy over the symmetric Nash set by
/// enumerating every support S (2^n polytopes `P(S)`); `mene` must match it.
pub fn brute_force_max_entropy(m: &Matrix) -> Result<f64, KernelError> {
    let n = m.n();
    let m = m.normalized();
    let mut best = f64::NEG_INFINITY;
    for mask in 1u64..(1 << n) {
        let br: Vec<bool> = (0..n).map(|k| mask >> k & 1 == 1).collect();
        match max_entropy(&equilibrium_polytope(&m, &br)) {
            Ok(r) => best = best.max(r.entropy),
            Err(KernelError::Infeasible) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// The dense node LPs and microlp's (the fallback path, here for every node) give the
    /// same max entropy on random general-sum games, with and without ties, both searched to
    /// the end.
    #[test]
    fn dense_and_microlp_node_lps_agree() {
        let mut r = SplitMix64::new(77);
        for n in 3..=11 {
            for variant in 0..3 {
                let raw = Matrix::from_fn(n, |_, _| r.next_f64());
                let m = match variant {
                    0 => raw,
                    1 => Matrix::from_fn(n, |i, j| (raw[(i, j)] * 2.0).round()),
                    _ => Matrix::from_fn(n, |i, j| (raw[(i, j)] * 4.0).round()),
                }
                .normalized();
                if m.constant_sum(CONSTANT_SUM_TOL).is_some() {
                    continue;
                }
                let dense = general_sum_mene(&m, usize::MAX, true).unwrap();
                let micro = general_sum_mene(&m, usize::MAX, false).unwrap();
                assert!(dense.exact && micro.exact);
                let h = crate::matrix::entropy;
                let (hd, hm) = (h(&dense.sigma), h(&micro.sigma));
                assert!(
                    (hd - hm).abs() < 1e-8,
                    "n={n} variant {variant}: {hd} vs {hm}"
                );
            }
        }
    }

    /// A leaf's single-point shortcut agrees with the polytope's own LP and Newton solve on
    /// random games and best-response sets: the same point when it finds one, empty when it
    /// says empty.
    #[test]
    fn single_point_leaves_agree_with_the_polytope() {
        let mut r = SplitMix64::new(41);
        let (mut points, mut empties, mut deferred) = (0, 0, 0);
        for case in 0..400 {
            let n = 2 + case % 9;
            let m = Matrix::from_fn(n, |_, _| r.next_f64()).normalized();
            let br: Vec<bool> = (0..n).map(|_| r.next_f64() < 0.5).collect();
            let reference = max_entropy(&equilibrium_polytope(&m, &br));
            match single_point(&m, &br) {
                Some(Ok(p)) => {
                    let q = reference.expect("the polytope is that point");
                    assert!((p.entropy - q.entropy).abs() < 1e-9, "case {case}");
                    for (a, b) in p.x.iter().zip(&q.x) {
                        assert!((a - b).abs() < 1e-7, "case {case}: {:?} vs {:?}", p.x, q.x);
                    }
                    points += 1;
                }
                Some(Err(())) => {
                    assert_eq!(
                        reference.err(),
                        Some(KernelError::Infeasible),
                        "case {case}"
                    );
                    empties += 1;
                }
                None => deferred += 1,
            }
        }
        assert!(
            points >= 20 && empties >= 100,
            "{points} points, {empties} empty, {deferred} deferred"
        );
    }

    fn zero_sum(n: usize, seed: u64) -> Matrix {
        let mut r = SplitMix64::new(seed);
        let a = Matrix::from_fn(n, |_, _| r.next_f64());
        Matrix::from_fn(n, |i, j| a[(i, j)] - a[(j, i)]).normalized()
    }

    /// The maximin shortcut and the general relative-interior LP give the same maximiser;
    /// a game with clones (equilibria not unique, support ⊊ tight) takes the general LP.
    #[test]
    fn structure_from_maximin_agrees_with_the_general_lp() {
        for (n, seed) in [(5, 1), (12, 2), (30, 3), (60, 4)] {
            let m = zero_sum(n, seed);
            let v = m.constant_sum(CONSTANT_SUM_TOL).unwrap() / 2.0;
            let p = constant_sum_polytope(&m, v);
            let x = crate::solvers::nash_lp(&m).unwrap();
            let ri = structure_from(&m, v, &x).expect("a unique equilibrium");
            let fast = max_entropy_within(&p, &ri).unwrap();
            let general = max_entropy(&p).unwrap();
            for (a, b) in fast.x.iter().zip(&general.x) {
                assert!(
                    (a - b).abs() < 1e-8,
                    "n={n}: {:?} vs {:?}",
                    fast.x,
                    general.x
                );
            }
        }
        // Rock–paper–scissors with a clone of scissors: a segment of equilibria.
        let rps = Matrix::from_fn(4, |i, j| {
            let k = |x: usize| x.min(2);
            [[0.5, 0.0, 1.0], [1.0, 0.5, 0.0], [0.0, 1.0, 0.5]][k(i)][k(j)]
        });
        let x = crate::solvers::nash_lp(&rps).unwrap();
        assert!(structure_from(&rps, 0.5, &x).is_none() || x[2] * x[3] > 0.0);
        let s = mene(&rps).unwrap();
        assert!(
            (s[2] - 1.0 / 6.0).abs() < 1e-8 && (s[3] - 1.0 / 6.0).abs() < 1e-8,
            "{s:?}"
        );
    }

    /// `m` plus antisymmetric noise of size `scale` (still constant-sum), range-normalised.
    fn nudged(m: &Matrix, scale: f64, seed: u64) -> Matrix {
        let mut r = SplitMix64::new(seed ^ 0x5eed);
        let e = Matrix::from_fn(m.n(), |_, _| r.next_f64() - 0.5);
        Matrix::from_fn(m.n(), |i, j| m[(i, j)] + scale * (e[(i, j)] - e[(j, i)])).normalized()
    }

    /// Level 2 subgame hints (each leave-one-out game's support in a slightly different game,
    /// as the engine keeps them from the previous epoch) are accepted by the one-solve check
    /// when the support did not move; when it moved (a larger nudge) the subgame is
    /// re-optimised from the hint's basis. No hint, right or wrong, changes an answer.
    #[test]
    fn subgame_hints_are_used_and_change_nothing() {
        use crate::solvers::LeaveOneOut;
        let (mut accepted, mut tries, mut moved, mut reoptimised) = (0, 0, 0, 0);
        let mut rebased = 0;
        for (n, seed) in [(15, 2), (31, 3), (50, 4)] {
            let m0 = zero_sum(n, seed);
            let before = LeaveOneOut::new(&m0, &mene(&m0).unwrap()).unwrap();
            let hints: Vec<Vec<usize>> = (0..n)
                .map(|c| support_of(&before.without(c, None, false).unwrap()))
                .collect();
            for (k, scale) in [(0, 1e-5), (1, 1e-5), (2, 1e-5), (3, 1e-2), (4, 1e-2)] {
                let m1 = nudged(&m0, scale, seed * 10 + k);
                let sigma = mene(&m1).unwrap();
                let loo = LeaveOneOut::new(&m1, &sigma).unwrap();
                let own = Maximin::at_support(&m1.normalized(), &support_of(&sigma)).unwrap();
                for c in 0..n {
                    let cold = loo.without(c, None, false).unwrap();
                    let wrong = &hints[(c + 1) % n];
                    // Checked first (`held`) or used as the start basis: the same answer.
                    for held in [false, true] {
                        for hint in [&hints[c], wrong] {
                            assert_eq!(
                                loo.without(c, Some(hint), held).unwrap(),
                                cold,
                                "n={n} c={c} held={held}"
                            );
                        }
                    }
                    if sigma[c] > 0.0 {
                        // Candidates in σ's support are the ones that need a subgame solve.
                        let keep: Vec<usize> = (0..n).filter(|&j| j != c).collect();
                        let sub =
                            Matrix::from_fn(n - 1, |a, b| m1[(keep[a], keep[b])]).normalized();
                        let v = sub.constant_sum(CONSTANT_SUM_TOL).unwrap() / 2.0;
                        let direct = unique_equilibrium_on(&sub, v, &hints[c]);
                        if scale < 1e-4 {
                            tries += 1;
                            accepted += usize::from(direct.is_some());
                        } else if direct.is_none() {
                            // The support moved: re-optimised from the hint's basis.
                            moved += 1;
                            if let Some(x) = equilibrium_near(&sub, v, &hints[c]) {
                                assert_eq!(x, cold, "n={n} c={c}");
                                reoptimised += 1;
                            }
                            // The same start reached from σ's tableau by a few pivots.
                            if let Some(x) = subgame_from(&sub, v, &own, c, &hints[c]) {
                                assert_eq!(x, cold, "n={n} c={c}");
                                rebased += 1;
                            }
                        }
                        if let Some(x) = direct {
                            assert_eq!(x, cold, "n={n} c={c}");
                        }
                    }
                }
            }
        }
        assert!(
            accepted * 10 >= tries * 8,
            "hints accepted: {accepted} of {tries}"
        );
        assert!(
            moved >= 10 && reoptimised * 10 >= moved * 9,
            "moved supports re-optimised: {reoptimised} of {moved}"
        );
        assert!(
            rebased * 10 >= moved * 9,
            "moved supports re-optimised from σ's tableau: {rebased} of {moved}"
        );
    }

    /// The tableau path does the work it is there for: from the support of a slightly
    /// different game (the previous epoch) it reaches the new equilibrium within its pivot
    /// budget, and from σ's own optimum it derives the Level 2 subgames, all equal to the
    /// cold route. (That it falls back rather than errs is checked by the integration tests.)
    #[test]
    fn tableau_paths_reach_the_cold_equilibria() {
        let (mut warm, mut tries, mut subs, mut sub_tries) = (0, 0, 0, 0);
        for (n, seed) in [(7, 1), (15, 2), (31, 3), (50, 4), (50, 5)] {
            let m0 = zero_sum(n, seed);
            let hint = support_of(&mene(&m0).unwrap());
            // From its own support the optimum is the start basis: no pivot at all.
            let mut t = Maximin::at_support(&m0, &hint).expect("nonsingular at the optimum");
            assert!(t.optimize(0), "n={n}: the equilibrium's basis is optimal");
            for k in 0..5 {
                let m1 = nudged(&m0, 0.01, seed * 10 + k);
                let v = m1.constant_sum(CONSTANT_SUM_TOL).unwrap() / 2.0;
                let cold = constant_sum_mene(&m1, v, &crate::solvers::nash_lp(&m1).unwrap());
                tries += 1;
                if let Some(x) = equilibrium_from(&m1, v, &hint) {
                    assert_eq!(x, cold.unwrap(), "n={n} k={k}");
                    warm += 1;
                }
            }
            let sigma = mene(&m0).unwrap();
            let t = Maximin::at_support(&m0, &support_of(&sigma)).unwrap();
            for c in (0..n).filter(|&c| sigma[c] > 0.0) {
                let keep: Vec<usize> = (0..n).filter(|&k| k != c).collect();
                let sub = Matrix::from_fn(n - 1, |a, b| m0[(keep[a], keep[b])]).normalized();
                let v = sub.constant_sum(CONSTANT_SUM_TOL).unwrap() / 2.0;
                let cold = constant_sum_mene(&sub, v, &crate::solvers::nash_lp(&sub).unwrap());
                sub_tries += 1;
                if let Some(x) = subgame_equilibrium(&sub, v, &t, c) {
                    assert_eq!(x, cold.unwrap(), "n={n} c={c}");
                    subs += 1;
                }
            }
        }
        assert!(warm * 10 >= tries * 9, "warm starts: {warm} of {tries}");
        assert!(
            subs * 10 >= sub_tries * 9,
            "subgames: {subs} of {sub_tries}"
        );
    }
}
