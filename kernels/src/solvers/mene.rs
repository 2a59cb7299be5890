//! `mene`: the maximum-Shannon-entropy symmetric Nash equilibrium, exactly.
//!
//! Every symmetric NE σ lies in the polytope of its best-response set B = BR(σ):
//! `P(B) = {σ ∈ Δ : supp σ ⊆ B, (Mσ)_k = v for k ∈ B, (Mσ)_k ≤ v for k ∉ B}`,
//! and every point of any `P(B)` is a NE. So the Nash set is the union of the `P(B)` over the
//! best-response sets that occur, and the max-entropy NE is the best of the per-polytope
//! max-entropy points ([`crate::maxent`]).
//!
//! * Constant-sum games (`M + Mᵀ = c`): the Nash set is the single polytope `{σ : Mσ ≤ c/2}`.
//! * General-sum: a MILP enumerates the best-response sets (binary `s_k` = "k is a best
//!   response", with a strict margin off B), largest first, each excluded by a no-good cut once
//!   solved. Since entropy on `P(B)` is at most `ln |B|`, the search stops as soon as no
//!   unexplored set can beat the best entropy found.

use good_lp::{
    microlp, variable, Expression, ProblemVariables, ResolutionError, Solution, SolverModel,
};

use crate::matrix::Matrix;
use crate::maxent::{max_entropy, MaxEnt};
use crate::polytope::{lp_error, Polytope, Row};
use crate::KernelError;

/// Relative tolerance for recognising a constant-sum game.
const CONSTANT_SUM_TOL: f64 = 1e-9;
/// Strict margin (in units of the payoff range) by which a non-best-response is worse.
const BR_MARGIN: f64 = 1e-7;

/// Max-entropy symmetric NE of `m`.
pub fn mene(m: &Matrix) -> Result<Vec<f64>, KernelError> {
    let n = m.n();
    if n == 0 {
        return Ok(vec![]);
    }
    let m = m.normalized();
    if let Some(c) = m.constant_sum(CONSTANT_SUM_TOL) {
        let best = max_entropy(&constant_sum_polytope(&m, c / 2.0))?;
        return Ok(crate::matrix::clean_simplex(best.x[..n].to_vec()));
    }
    let mut best: Option<MaxEnt> = None;
    let mut seen: Vec<Vec<bool>> = Vec::new();
    loop {
        let min_size = match &best {
            // |B| must exceed e^H to possibly beat H.
            Some(b) => (b.entropy.exp() + 1e-9).floor() as usize + 1,
            None => 1,
        };
        if min_size > n {
            break;
        }
        let found = crate::polytope::retry_reordered(|order| {
            next_best_response_set(&m, &seen, min_size, order)
        })?;
        let Some(br) = found else {
            break;
        };
        match max_entropy(&equilibrium_polytope(&m, &br)) {
            Ok(sol) => {
                if best
                    .as_ref()
                    .is_none_or(|b| sol.entropy > b.entropy + 1e-12)
                {
                    best = Some(sol);
                }
            }
            // The MILP accepted B within its tolerance but the exact polytope is empty.
            Err(KernelError::Infeasible) => {}
            Err(e) => return Err(e),
        }
        seen.push(br);
    }
    let best = best.ok_or_else(|| {
        KernelError::Numerical("mene: no symmetric equilibrium found (MILP failure)".into())
    })?;
    Ok(crate::matrix::clean_simplex(best.x[..n].to_vec()))
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

/// `P(B)` over coordinates `(σ_0..σ_{n−1}, v)`.
fn equilibrium_polytope(m: &Matrix, br: &[bool]) -> Polytope {
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

/// The largest best-response set of some NE that is not in `seen` and has at least
/// `min_size` members; `None` when there is none.
fn next_best_response_set(
    m: &Matrix,
    seen: &[Vec<bool>],
    min_size: usize,
    order: &crate::polytope::Order,
) -> Result<Option<Vec<bool>>, KernelError> {
    let n = m.n();
    let mut vars = ProblemVariables::new();
    let sigma: Vec<_> = (0..n)
        .map(|_| vars.add(variable().min(0.0).max(1.0)))
        .collect();
    let v = vars.add(variable().min(0.0).max(1.0));
    let s: Vec<_> = (0..n).map(|_| vars.add(variable().binary())).collect();
    let size: Expression = s.iter().copied().sum();
    let mut model = vars.maximise(size.clone()).using(microlp);
    model = model.with(sigma.iter().copied().sum::<Expression>().eq(1.0));
    model = model.with(size.geq(min_size as f64));
    for k in order.perm(n) {
        let u: Expression = (0..n)
            .filter(|&j| m[(k, j)] != 0.0)
            .map(|j| m[(k, j)] * sigma[j])
            .sum();
        // u_k ≤ v; s_k = 1 ⇒ u_k = v (big-M = 1 on the normalised range);
        // s_k = 0 ⇒ u_k ≤ v − margin and σ_k = 0.
        model = model.with((u.clone() - v).leq(0.0));
        model = model.with((v - u.clone() + s[k]).leq(1.0));
        model = model.with((v - u + BR_MARGIN * s[k]).geq(BR_MARGIN));
        model = model.with((sigma[k] - s[k]).leq(0.0));
    }
    for pattern in seen {
        // Exclude exactly this pattern: at least one s_k must differ.
        let mut cut = Expression::from(0.0);
        let mut ones = 0.0;
        for k in 0..n {
            if pattern[k] {
                cut -= s[k];
                ones += 1.0;
            } else {
                cut += s[k];
            }
        }
        model = model.with(cut.geq(1.0 - ones));
    }
    match model.solve() {
        Ok(sol) => Ok(Some(s.iter().map(|&x| sol.value(x) > 0.5).collect())),
        Err(ResolutionError::Infeasible) => Ok(None),
        Err(e) => Err(lp_error(e)),
    }
}
