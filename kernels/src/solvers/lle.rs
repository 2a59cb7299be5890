//! `lle`: the limiting logit equilibrium, approximated by the symmetric logit quantal response
//! equilibrium `σ = softmax(λ·Mσ)` on the range-normalised matrix at `λ = lambda_max`, on the
//! principal branch: the curve of QREs that starts at uniform play at λ = 0.
//!
//! The branch is traced by pseudo-arclength continuation in `(y, λ)`, `y = ln σ`: the branch
//! can turn back in λ (a fold) before it reaches `lambda_max`, and stepping in λ alone would
//! stall there or jump to another branch. The curve is the zero set of
//! `H(y, λ) = y − λ·u + lse(λ·u)`, `u = M e^y` (n equations, n + 1 unknowns; `Σ e^y = 1`
//! holds at every zero). Each step predicts along the unit tangent, corrects by Newton on
//! `H = 0` within the hyperplane orthogonal to the tangent, adapts its length to the
//! corrector's behaviour, and is rejected when it lands on another branch (the orientation
//! check in the loop). Log coordinates keep vanishing strategies (σ_k ≈ e^{−λ·gap}) exact.

use nalgebra::{DMatrix, DVector};

use crate::matrix::{clean_simplex, Matrix};

/// Newton corrections below this times `1 + ‖(y, λ)‖∞` count as converged. Relative, because
/// `y_k ≈ −λ·gap_k` reaches −1000 for a vanishing strategy and λ·u is rounded at that scale:
/// an absolute floor would never be met there (the corrections stall at the rounding noise).
const NEWTON_TOL: f64 = 1e-12;
/// A corrector whose first step exceeds this was predicting too far: the step is retried shorter.
const MAX_FIRST_CORRECTION: f64 = 0.5;
/// A corrector that contracts worse than this per iteration is not in Newton's basin.
const MAX_CONTRACTION: f64 = 0.5;
const MAX_STEPS: usize = 20_000;
/// The longest step at small λ.
const MAX_STEP: f64 = 50.0;
/// Steps at or below this length may change the orientation (see the loop in [`lle`]): near
/// a true bifurcation the corrector stalls on steps much shorter than this.
const H_CROSS: f64 = 1e-3;

/// The traced equilibrium, and whether the continuation reached `lambda_max` (when it did not,
/// σ is the last QRE reached on the branch).
pub struct Lle {
    pub sigma: Vec<f64>,
    pub reached: bool,
}

/// `H(y, λ)` and its Jacobian `[∂H/∂y | ∂H/∂λ]` (n × (n + 1)).
fn residual(a: &Matrix, y: &[f64], lambda: f64) -> (DVector<f64>, DMatrix<f64>) {
    let n = a.n();
    let sigma: Vec<f64> = y.iter().map(|v| v.exp()).collect();
    let u = a.mul_vec(&sigma);
    let top = u.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(lambda * x));
    let w: Vec<f64> = u.iter().map(|&x| (lambda * x - top).exp()).collect();
    let z: f64 = w.iter().sum();
    let lse = top + z.ln();
    let h = DVector::from_iterator(n, (0..n).map(|i| y[i] - lambda * u[i] + lse));
    let p: Vec<f64> = w.iter().map(|x| x / z).collect();
    // ∂lse/∂u_k = λ·p_k, so ∂H_i/∂y_j = δ_ij − λ·(M[i,j] − (pᵀM)_j)·σ_j.
    let pm: Vec<f64> = (0..n)
        .map(|j| (0..n).map(|k| p[k] * a[(k, j)]).sum())
        .collect();
    let pu: f64 = p.iter().zip(&u).map(|(x, y)| x * y).sum();
    let mut jac = DMatrix::zeros(n, n + 1);
    for i in 0..n {
        for j in 0..n {
            jac[(i, j)] = f64::from(i == j) - lambda * (a[(i, j)] - pm[j]) * sigma[j];
        }
        jac[(i, n)] = pu - u[i];
    }
    (h, jac)
}

/// The unit tangent `t` with `J t = 0`, oriented along `prev` (`[J; prevᵀ] t = e_{n+1}`), and
/// the sign of `det [J; tᵀ]` (that of `det [J; prevᵀ]`: the rank-one update of its last row
/// scales the determinant by `‖t‖ > 0`). Along one regular branch the sign is constant.
fn tangent(jac: &DMatrix<f64>, prev: &DVector<f64>) -> Option<(DVector<f64>, bool)> {
    let n = jac.nrows();
    let mut aug = jac.clone().insert_row(n, 0.0);
    aug.row_mut(n).copy_from(&prev.transpose());
    let mut e = DVector::zeros(n + 1);
    e[n] = 1.0;
    let lu = aug.lu();
    let t = lu.solve(&e)?;
    let norm = t.norm();
    (norm.is_finite() && norm > 0.0).then(|| (t / norm, lu.determinant() > 0.0))
}

/// Newton on `H = 0` plus one linear side condition `rowᵀ(w − anchor) = 0`, from `start`.
/// `None` when it leaves Newton's basin (see the constants above).
fn correct(
    a: &Matrix,
    start: DVector<f64>,
    row: &DVector<f64>,
    anchor: &DVector<f64>,
) -> Option<DVector<f64>> {
    let n = a.n();
    let mut w = start;
    let mut last = f64::INFINITY;
    let tol = NEWTON_TOL * (1.0 + w.amax());
    for it in 0..12 {
        let (h, jac) = residual(a, &w.as_slice()[..n], w[n]);
        let mut aug = jac.insert_row(n, 0.0);
        aug.row_mut(n).copy_from(&row.transpose());
        let mut g = h.insert_row(n, 0.0);
        g[n] = row.dot(&(&w - anchor));
        let d = aug.lu().solve(&(-g))?;
        let size = d.amax();
        if it > 0 && size > MAX_CONTRACTION * last && last < 1e3 * tol {
            // Stagnation just above the tolerance: the rounding noise of λ·u at large λ.
            return Some(w);
        }
        if !size.is_finite()
            || (it == 0 && size > MAX_FIRST_CORRECTION)
            || (it > 0 && size > MAX_CONTRACTION * last && size > tol)
        {
            return None;
        }
        w += d;
        if size < tol {
            return Some(w);
        }
        last = size;
    }
    None
}

pub fn lle(m: &Matrix, lambda_max: f64) -> Lle {
    let n = m.n();
    if n == 0 {
        return Lle {
            sigma: vec![],
            reached: true,
        };
    }
    let a = m.normalized();
    let sigma_of = |z: &DVector<f64>| clean_simplex(z.iter().take(n).map(|v| v.exp()).collect());
    let mut z = DVector::from_element(n + 1, -(n as f64).ln());
    z[n] = 0.0;
    let mut e_lambda = DVector::zeros(n + 1);
    e_lambda[n] = 1.0;
    let tangent_at = |z: &DVector<f64>, prev: &DVector<f64>| {
        let (_, jac) = residual(&a, &z.as_slice()[..n], z[n]);
        tangent(&jac, prev)
    };
    let Some((mut t, mut orientation)) = tangent_at(&z, &e_lambda) else {
        return Lle {
            sigma: sigma_of(&z),
            reached: false,
        };
    };
    let mut h = 0.1;
    for _ in 0..MAX_STEPS {
        let predicted = &z + &t * h;
        let accepted = correct(&a, predicted.clone(), &t, &predicted).and_then(|w| {
            let (tw, ow) = tangent_at(&w, &t)?;
            // A flipped orientation means the step crossed onto another branch near a
            // (nearly) singular point: retry shorter. Only a step that still flips at
            // H_CROSS crosses a true bifurcation (exact ties, such as clones), and goes on
            // straight through it, as the tangent points.
            (ow == orientation || h <= H_CROSS).then_some((w, tw, ow))
        });
        let Some((w, tw, ow)) = accepted else {
            h *= 0.5;
            if h < 1e-10 {
                break;
            }
            continue;
        };
        if w[n] >= lambda_max {
            // The branch crossed λ_max between z and w: start from the chord's crossing and
            // solve at λ = λ_max exactly; if that fails, take a shorter step.
            let f = (lambda_max - z[n]) / (w[n] - z[n]);
            let start = &z + (&w - &z) * f;
            let at = DVector::from_fn(n + 1, |i, _| if i == n { lambda_max } else { 0.0 });
            if let Some(end) = correct(&a, start, &e_lambda, &at) {
                return Lle {
                    sigma: sigma_of(&end),
                    reached: true,
                };
            }
            h *= 0.5;
            continue;
        }
        (z, t, orientation) = (w, tw, ow);
        // Far out the branch is nearly straight in (y, λ): the cap grows with λ so that a
        // large λ_max costs a few more steps, not λ_max / 50.
        h = (h * 1.5).min(MAX_STEP.max(0.5 * z[n]));
    }
    Lle {
        sigma: sigma_of(&z),
        reached: false,
    }
}
