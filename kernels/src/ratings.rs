//! Ratings (DESIGN §5): Bradley–Terry MLE with Fisher-information CIs (draws count as half a
//! win to each side), Elo for reference, and Nash averaging.
//!
//! Scale: Elo points, `rating = 1500 + θ·400/ln 10` with `Σθ = 0` over rated policies, so a
//! 400-point gap means 10:1 odds. When the win graph is not strongly connected (a policy that
//! never lost or never won) the MLE is infinite; then one virtual draw is added between every
//! pair of rated policies and `regularized` is set.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::matrix::Matrix;
use crate::KernelError;

pub const ELO_BASE: f64 = 1500.0;
const ELO_SCALE: f64 = 400.0 / std::f64::consts::LN_10;
const Z95: f64 = 1.959_963_984_540_054;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rating {
    pub rating: f64,
    pub se: f64,
    pub lo: f64,
    pub hi: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BradleyTerry {
    /// `None` for a policy with no games against others.
    pub ratings: Vec<Option<Rating>>,
    pub regularized: bool,
}

fn strongly_connected(w: &DMatrix<f64>) -> bool {
    let n = w.nrows();
    let reach = |forward: bool| {
        let mut seen = vec![false; n];
        let mut stack = vec![0];
        seen[0] = true;
        while let Some(i) = stack.pop() {
            for j in 0..n {
                let e = if forward { w[(i, j)] } else { w[(j, i)] };
                if e > 0.0 && !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
        seen.into_iter().all(|s| s)
    };
    n == 0 || (reach(true) && reach(false))
}

/// `score[i][j]` = wins of i over j (draws as halves), self-play ignored.
pub fn bradley_terry(score: &Matrix) -> Result<BradleyTerry, KernelError> {
    let n = score.n();
    let rated: Vec<usize> = (0..n)
        .filter(|&i| (0..n).any(|j| j != i && score[(i, j)] + score[(j, i)] > 0.0))
        .collect();
    let r = rated.len();
    let mut ratings = vec![None; n];
    if r < 2 {
        return Ok(BradleyTerry {
            ratings,
            regularized: false,
        });
    }
    let mut w = DMatrix::from_fn(r, r, |a, b| {
        if a == b {
            0.0
        } else {
            score[(rated[a], rated[b])]
        }
    });
    let regularized = !strongly_connected(&w);
    if regularized {
        for a in 0..r {
            for b in 0..r {
                if a != b {
                    w[(a, b)] += 0.5;
                }
            }
        }
    }
    let j = DMatrix::from_element(r, r, 1.0 / r as f64);
    // Converged when the gradient (in games) is at rounding level for the busiest policy:
    // an absolute threshold never triggers on large logs and would spend every iteration.
    let busiest = (0..r)
        .map(|a| (0..r).map(|b| w[(a, b)] + w[(b, a)]).sum::<f64>())
        .fold(1.0, f64::max);
    // Damped Newton from θ = 0. Every θ tried is centred first (the model is shift
    // invariant), so an accepted trial's log-likelihood is the next iteration's baseline.
    // One Cholesky factor per θ: it gives the Newton step, and at the last θ the variances.
    let mut at = Fit::at(&w, DVector::zeros(r));
    // The log-likelihood at `at.theta`, once a trial has needed it.
    let mut at_loglik = None;
    let mut steps = 0;
    let factor = loop {
        let factor = spd(&at.fisher + &j)?;
        if at.grad.amax() < 1e-12 * busiest || steps == 200 {
            break factor;
        }
        steps += 1;
        let step = factor.solve(&at.grad);
        let mut alpha = 1.0;
        let mut next = None;
        while alpha > 1e-10 {
            let mut cand = &at.theta + &step * alpha;
            let mean = cand.mean();
            cand.add_scalar_mut(-mean);
            let fit = Fit::at(&w, cand);
            // The log-likelihood is concave, so if its slope along the step is still ≥ 0 at
            // the trial, it rose all the way there: accepted without evaluating it (its
            // logarithms are most of a fit's cost), as the test below would accept it.
            if fit.grad.dot(&step) >= 0.0 {
                next = Some((fit, None));
                break;
            }
            // Accept up to rounding of the log-likelihood itself (a sum over every game).
            let base = *at_loglik.get_or_insert_with(|| loglik(&w, &at.theta));
            let slack = 1e-12 * base.abs().max(1.0);
            let trial = loglik(&w, &fit.theta);
            if trial >= base - slack {
                next = Some((fit, Some(trial)));
                break;
            }
            alpha *= 0.5;
        }
        match next {
            Some((fit, trial)) => (at, at_loglik) = (fit, trial),
            // No step improves on rounding: θ is the optimum to working precision.
            None => break factor,
        }
    };
    let theta = &at.theta;
    // Only the variances are reported: the diagonal of (F + J)⁻¹ − J, where with
    // F + J = L·Lᵀ the inverse is L⁻ᵀ·L⁻¹, so its (a, a) entry is column a of L⁻¹ squared.
    let l_inv = lower_inverse(&factor.l()).ok_or_else(singular)?;
    for (a, &i) in rated.iter().enumerate() {
        let rating = ELO_BASE + ELO_SCALE * theta[a];
        let variance = l_inv.column(a).norm_squared() - 1.0 / r as f64;
        let se = ELO_SCALE * variance.max(0.0).sqrt();
        ratings[i] = Some(Rating {
            rating,
            se,
            lo: rating - Z95 * se,
            hi: rating + Z95 * se,
        });
    }
    Ok(BradleyTerry {
        ratings,
        regularized,
    })
}

fn singular() -> KernelError {
    KernelError::Numerical("Bradley–Terry: singular Fisher matrix".into())
}

/// The inverse of a lower-triangular `l`, column by column by forward substitution, as
/// nalgebra's `solve_lower_triangular` of the identity computes it, to the bit, but starting
/// each column at its diagonal: the rows above it stay exactly 0, so a third of the work.
/// `None` when a diagonal entry is 0.
fn lower_inverse(l: &DMatrix<f64>) -> Option<DMatrix<f64>> {
    let r = l.nrows();
    let mut inv = DMatrix::zeros(r, r);
    for a in 0..r {
        let mut x = inv.column_mut(a);
        x[a] = 1.0;
        for i in a..r {
            let diag = l[(i, i)];
            if diag == 0.0 {
                return None;
            }
            let coeff = x[i] / diag;
            x[i] = coeff;
            for j in i + 1..r {
                // nalgebra's axpy, `-coeff · l + 1 · x`, is this to the bit.
                x[j] -= coeff * l[(j, i)];
            }
        }
    }
    Some(inv)
}

/// The Cholesky factor of `F + J` (F the Fisher information, a graph Laplacian, and J = 11ᵀ/r
/// fixing the shift): positive definite when the comparison graph is connected, and half
/// the work of an LU.
fn spd(a: DMatrix<f64>) -> Result<nalgebra::Cholesky<f64, nalgebra::Dyn>, KernelError> {
    a.cholesky().ok_or_else(singular)
}

/// The Bradley–Terry log-likelihood at θ from wins `w[(a, b)]` (a over b; the diagonal is
/// ignored): one `exp` and one `ln_1p` per unordered pair. With `d = θ_a − θ_b` and
/// `e = exp(−|d|)`, `ln σ(±d) = −(max(∓d, 0) + ln(1 + e))` (stable for any |d|).
fn loglik(w: &DMatrix<f64>, theta: &DVector<f64>) -> f64 {
    let r = theta.len();
    let mut loglik = 0.0;
    // `ln_1p(1)` as the general branch computes it, so the shortcut changes no bit.
    let ln_2 = 1f64.ln_1p();
    for a in 0..r {
        for b in a + 1..r {
            let (wab, wba) = (w[(a, b)], w[(b, a)]);
            if wab + wba == 0.0 {
                continue;
            }
            let d = theta[a] - theta[b];
            // At d = 0 (every pair at θ = 0): exp(−0) = 1 exactly.
            let log1p = if d == 0.0 {
                ln_2
            } else {
                (-d.abs()).exp().ln_1p()
            };
            loglik -= wab * ((-d).max(0.0) + log1p) + wba * d.max(0.0) + wba * log1p;
        }
    }
    loglik
}

/// The Bradley–Terry gradient and Fisher information at θ, from wins `w[(a, b)]`.
struct Fit {
    theta: DVector<f64>,
    grad: DVector<f64>,
    fisher: DMatrix<f64>,
}

impl Fit {
    /// One pass over the unordered pairs with one `exp` each: with `d = θ_a − θ_b` and
    /// `e = exp(−|d|)`, `σ(d)` is `1/(1+e)` or `e/(1+e)` by the sign of d (stable for any |d|).
    fn at(w: &DMatrix<f64>, theta: DVector<f64>) -> Fit {
        let r = theta.len();
        let mut grad = DVector::zeros(r);
        let mut fisher = DMatrix::zeros(r, r);
        for a in 0..r {
            for b in a + 1..r {
                let (wab, wba) = (w[(a, b)], w[(b, a)]);
                let nab = wab + wba;
                if nab == 0.0 {
                    continue;
                }
                let d = theta[a] - theta[b];
                // At d = 0 (every pair of the first evaluation, θ = 0): exp(−0) = 1 exactly.
                let e = if d == 0.0 { 1.0 } else { (-d.abs()).exp() };
                // p = σ(d): the probability that a beats b.
                let p = if d >= 0.0 {
                    1.0 / (1.0 + e)
                } else {
                    e / (1.0 + e)
                };
                let ga = wab - nab * p;
                grad[a] += ga;
                grad[b] -= ga;
                let h = nab * p * (1.0 - p);
                fisher[(a, a)] += h;
                fisher[(b, b)] += h;
                fisher[(a, b)] -= h;
                fisher[(b, a)] -= h;
            }
        }
        Fit {
            theta,
            grad,
            fisher,
        }
    }
}

/// Sequential Elo over `(i, j, score_i)` results in the given order, K = 32, start 1500.
pub fn elo(n: usize, results: impl IntoIterator<Item = (usize, usize, f64)>) -> Vec<f64> {
    let mut r = vec![ELO_BASE; n];
    for (i, j, s) in results {
        elo_step(&mut r, i, j, s);
    }
    r
}

/// One result of [`elo`]: i scored `s` against j (self-play changes nothing). The one
/// definition of the update, so that the engine's incremental ratings equal the batch's.
pub fn elo_step(r: &mut [f64], i: usize, j: usize, s: f64) {
    const K: f64 = 32.0;
    if i == j {
        return;
    }
    let expected = 1.0 / (1.0 + 10f64.powf((r[j] - r[i]) / 400.0));
    r[i] += K * (s - expected);
    r[j] -= K * (s - expected);
}

/// Nash averaging (Balduzzi et al. 2018): `A p*` with `A = M − Mᵀ` and `p*` its max-entropy NE.
/// `mene_of_m`, when known, is `mene(M)`: for a constant-sum M, `A = 2M − c` has the same
/// equilibria, so it is `p*` and no solve is needed.
pub fn nash_averaging(m: &Matrix, mene_of_m: Option<&[f64]>) -> Result<Vec<f64>, KernelError> {
    let a = Matrix::from_fn(m.n(), |i, j| m[(i, j)] - m[(j, i)]);
    let constant_sum = || {
        m.normalized()
            .constant_sum(crate::solvers::CONSTANT_SUM_TOL)
            .is_some()
    };
    let p = match mene_of_m {
        Some(p) if constant_sum() => p.to_vec(),
        _ => crate::solvers::mene(&a)?,
    };
    Ok(a.mul_vec(&p))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The triangular inverse is nalgebra's, to the bit.
    #[test]
    fn lower_inverse_matches_nalgebra_to_the_bit() {
        let mut rng = crate::rng::SplitMix64::new(5);
        for r in [1, 2, 7, 49] {
            let a = DMatrix::from_fn(r, r, |_, _| rng.next_f64() - 0.5);
            let spd = &a * a.transpose() + DMatrix::identity(r, r);
            let l = spd.cholesky().expect("positive definite").l();
            let ours = lower_inverse(&l).expect("nonsingular");
            let theirs = l
                .solve_lower_triangular(&DMatrix::identity(r, r))
                .expect("nonsingular");
            let bits = |m: &DMatrix<f64>| m.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&ours), bits(&theirs), "r={r}");
        }
        assert!(lower_inverse(&DMatrix::zeros(2, 2)).is_none());
    }
}
