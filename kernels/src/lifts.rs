//! Level 1 (partner lift), Level 2 (ecosystem lift) and keystone analysis (DESIGN §5).

use serde::{Deserialize, Serialize};

use crate::matrix::{dot, dots, vectorised, Matrix};
use crate::metrics::WelfareKind;
use crate::parallel;
use crate::progress::Progress;
use crate::solvers::{LeaveOneOut, SolverConfig, SolverKind, SubgameHints};
use crate::stats::GameMatrices;
use crate::KernelError;

/// Level 1 for candidate `c` against baseline B = P∖{c} with σ_B = solve(M_B):
/// `PL(i) = M[i,c] − Σ_k σ_B(k) M[i,k]` for each incumbent i.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Level1 {
    pub candidate: usize,
    /// (incumbent, PL) in matrix order.
    pub per_incumbent: Vec<(usize, f64)>,
    pub uniform_avg: f64,
    /// σ_B-weighted mean.
    pub equilibrium_avg: f64,
    pub min: f64,
    pub max: f64,
}

/// Level 2 for candidate `c`: σ⁺ = solve(M over B ∪ {c}).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Level2 {
    pub candidate: usize,
    /// `W(B ∪ {c}) − W(B)` per welfare, in [`WelfareKind::ALL`] order.
    pub delta_eco: [f64; 3],
    pub entry_mass: f64,
    /// `Σ_{k∈B} |σ⁺(k) − σ_B(k)|`.
    pub equilibrium_shift: f64,
    /// (incumbent i, `(Mσ⁺)_i − (M_B σ_B)_i`).
    pub incumbent_shifts: Vec<(usize, f64)>,
    /// σ_B is proven to be the solver's answer: false only when general-sum `mene` ran out of
    /// search budget on B (σ_B is then the highest-entropy equilibrium found) or `lle`'s
    /// continuation stalled on B.
    pub baseline_exact: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Lifts {
    pub level1: Vec<Level1>,
    pub level2: Vec<Level2>,
}

/// `W(S) = σ_Sᵀ W_S σ_S` for each welfare kind.
pub fn coalition_welfare(g: &GameMatrices, sigma: &[f64]) -> [f64; 3] {
    WelfareKind::ALL.map(|w| w.matrix(g).bilinear(sigma, sigma))
}

/// `xᵀ W x` for each of the three welfare matrices and `M x`, in one pass over the rows: the
/// same sums as [`Matrix::bilinear`] and [`Matrix::mul_vec`] (to the bit), but a row of x's
/// support reads its four matrices' rows together, as four independent dot products.
fn welfare_and_payoffs(welfare: &[Matrix; 3], m: &Matrix, x: &[f64]) -> ([f64; 3], Vec<f64>) {
    vectorised(|| {
        let n = m.n();
        let mut terms: [Vec<f64>; 3] = std::array::from_fn(|_| Vec::with_capacity(n));
        let u = (0..n)
            .map(|i| {
                if x[i] == 0.0 {
                    return dot(m.row(i), x);
                }
                let [w0, w1, w2, mx] = dots(
                    [
                        welfare[0].row(i),
                        welfare[1].row(i),
                        welfare[2].row(i),
                        m.row(i),
                    ],
                    x,
                );
                for (t, d) in terms.iter_mut().zip([w0, w1, w2]) {
                    t.push(x[i] * d);
                }
                mx
            })
            .collect();
        (terms.map(|t| t.into_iter().sum::<f64>()), u)
    })
}

/// Level 1 and Level 2 for every candidate (leave-one-out). `sigma_full` is σ on all of P.
pub fn lifts(
    g: &GameMatrices,
    sigma_full: &[f64],
    solver: &SolverConfig,
) -> Result<Lifts, KernelError> {
    lifts_hinted(
        g,
        sigma_full,
        solver,
        &mut SubgameHints::default(),
        &mut crate::progress::Silent,
    )
}

/// [`lifts`], starting candidate c's leave-one-out `mene` from its support in `hints` (in the
/// subgame's indices, e.g. from the previous epoch), and leaving this call's supports there.
/// The result does not depend on the hints; only the cost does. When each subgame is solved
/// from scratch (general-sum games, other solvers), the solves are reported to `progress`.
pub fn lifts_hinted(
    g: &GameMatrices,
    sigma_full: &[f64],
    solver: &SolverConfig,
    hints: &mut SubgameHints,
    progress: &mut dyn Progress,
) -> Result<Lifts, KernelError> {
    let n = g.n();
    let m = &g.payoff;
    let u_full = m.mul_vec(sigma_full);
    // Each candidate's leave-one-out game is independent: solve them on every core.
    let candidates: Vec<usize> = (0..n).collect();
    // A constant-sum game's `mene` subgames derive from one warm-started LP.
    let loo = (solver.kind == SolverKind::Mene && n > 1)
        .then(|| LeaveOneOut::new(m, sigma_full))
        .flatten();
    // Welfare and payoffs of a subgame's σ are read on the full matrices with σ extended by
    // a zero for the candidate: no per-candidate sub-matrices.
    let welfare_of = WelfareKind::ALL.map(|w| w.matrix(g));
    // `coalition_welfare(g, sigma_full)`, on the matrices already built.
    let w_full = welfare_of
        .each_ref()
        .map(|wm| wm.bilinear(sigma_full, sigma_full));
    let leave_out = |&c: &usize| {
        if n == 1 {
            return Ok((vec![], [0.0; 3], vec![], true));
        }
        let (s, exact) = match &loo {
            Some(loo) => {
                let (hint, held) = hints.at(c);
                (loo.without(c, hint, held)?, true)
            }
            None => {
                let base: Vec<usize> = (0..n).filter(|&k| k != c).collect();
                let solved = solver.solve_hinted(&m.sub(&base), None)?;
                (solved.sigma, solved.exact)
            }
        };
        let mut x = s.clone();
        x.insert(c, 0.0);
        // A candidate outside σ's support usually leaves σ itself (x = σ to the bit): then the
        // subgame's welfare and payoffs are the full game's, already computed.
        let (w, mut u) = if x == sigma_full {
            (w_full, u_full.clone())
        } else {
            welfare_and_payoffs(&welfare_of, m, &x)
        };
        u.remove(c);
        Ok::<_, KernelError>((s, w, u, exact))
    };
    let parallel = n >= parallel::MIN_PARALLEL_N;
    // The warm leave-one-out path takes microseconds per subgame: no progress to show, and
    // below `MIN_PARALLEL_LOO_N` the pool's hand-off and its threads' spinning afterwards
    // cost more CPU than the pool saves wall time. Games too small for the pool are solved
    // inline too, without the progress helper thread.
    let without = if loo.is_some() {
        let parallel = n >= parallel::MIN_PARALLEL_LOO_N;
        parallel::map(&candidates, parallel, leave_out)
    } else if !parallel {
        parallel::map(&candidates, false, leave_out)
    } else {
        let label = "Level 1/2 (leave-one-out)";
        parallel::map_with_progress(&candidates, parallel, progress, label, leave_out)
    };
    hints.remember(
        without
            .iter()
            .map(|w| w.as_ref().map_or(&[][..], |(s, ..)| s.as_slice())),
    );
    let mut level1 = Vec::new();
    let mut level2 = Vec::new();
    for (c, solved) in without.into_iter().enumerate() {
        let base: Vec<usize> = (0..n).filter(|&k| k != c).collect();
        let (sigma_b, w_b, u_b, baseline_exact) = solved?;
        if !base.is_empty() {
            // i's payoff against σ_B is `u_b` (σ_B's zero at c adds nothing to the sum).
            let per: Vec<(usize, f64)> = base
                .iter()
                .zip(&u_b)
                .map(|(&i, ub)| (i, m[(i, c)] - ub))
                .collect();
            let vals: Vec<f64> = per.iter().map(|p| p.1).collect();
            level1.push(Level1 {
                candidate: c,
                uniform_avg: vals.iter().sum::<f64>() / vals.len() as f64,
                equilibrium_avg: vals.iter().zip(&sigma_b).map(|(v, s)| v * s).sum(),
                min: vals.iter().copied().fold(f64::INFINITY, f64::min),
                max: vals.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                per_incumbent: per,
            });
        }
        level2.push(Level2 {
            candidate: c,
            delta_eco: [0, 1, 2].map(|k| w_full[k] - w_b[k]),
            entry_mass: sigma_full[c],
            equilibrium_shift: base
                .iter()
                .zip(&sigma_b)
                .map(|(&k, s)| (sigma_full[k] - s).abs())
                .sum(),
            incumbent_shifts: base
                .iter()
                .zip(&u_b)
                .map(|(&i, ub)| (i, u_full[i] - ub))
                .collect(),
            baseline_exact,
        });
    }
    Ok(Lifts { level1, level2 })
}

#[cfg(test)]
mod tests {
    use super::welfare_and_payoffs;
    use crate::matrix::Matrix;

    /// The one-pass welfare and payoffs are `bilinear` and `mul_vec`, to the bit.
    #[test]
    fn one_pass_welfare_is_bilinear_and_mul_vec() {
        let mut r = crate::rng::SplitMix64::new(2);
        for n in [1, 2, 5, 9, 49] {
            let mut mat = || Matrix::from_fn(n, |_, _| r.next_f64());
            let (m, w) = (mat(), [mat(), mat(), mat()]);
            let x: Vec<f64> = (0..n)
                .map(|k| if k % 2 == 0 { 1.0 / n as f64 } else { 0.0 })
                .collect();
            let (got, u) = welfare_and_payoffs(&w, &m, &x);
            assert_eq!(u, m.mul_vec(&x), "n={n}");
            for (g, wm) in got.iter().zip(&w) {
                assert_eq!(g.to_bits(), wm.bilinear(&x, &x).to_bits(), "n={n}");
            }
        }
    }
}
