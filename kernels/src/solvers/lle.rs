//! `lle`: the limiting logit equilibrium, approximated by the symmetric logit quantal response
//! equilibrium `σ = softmax(λ·Mσ)` on the range-normalised matrix, traced from λ = 0 (uniform)
//! along the principal branch by Newton continuation up to `lambda_max`.

use nalgebra::{DMatrix, DVector};

use crate::matrix::{clean_simplex, Matrix};

fn softmax(x: &[f64]) -> Vec<f64> {
    let top = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|v| (v - top).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

/// Newton's method on `F(σ) = σ − softmax(λMσ)` from `start`; `None` if it fails to converge.
fn qre_at(m: &Matrix, lambda: f64, start: &[f64]) -> Option<Vec<f64>> {
    let n = m.n();
    let mut s = start.to_vec();
    for _ in 0..50 {
        let p = softmax(&m.mul_vec(&s).iter().map(|u| lambda * u).collect::<Vec<_>>());
        let f = DVector::from_iterator(n, s.iter().zip(&p).map(|(a, b)| a - b));
        if f.amax() < 1e-13 {
            return Some(s);
        }
        // J = I − λ (diag(p) − p pᵀ) M
        let d = DMatrix::from_fn(n, n, |i, j| if i == j { p[i] } else { 0.0 } - p[i] * p[j]);
        let mm = DMatrix::from_fn(n, n, |i, j| m[(i, j)]);
        let jac = DMatrix::identity(n, n) - (d * mm) * lambda;
        let step = jac.lu().solve(&(-f))?;
        let mut next: Vec<f64> = s.iter().zip(step.iter()).map(|(a, b)| a + b).collect();
        if next.iter().any(|x| !x.is_finite() || *x <= 0.0) {
            // Damp towards the fixed-point image to stay in the simplex interior.
            next = s.iter().zip(&p).map(|(a, b)| 0.5 * (a + b)).collect();
        }
        s = next;
    }
    None
}

pub fn lle(m: &Matrix, lambda_max: f64) -> Vec<f64> {
    let n = m.n();
    if n == 0 {
        return vec![];
    }
    let m = m.normalized();
    let mut sigma = vec![1.0 / n as f64; n];
    let mut lambda = 0.0;
    let mut dl = 0.1;
    while lambda < lambda_max && dl > 1e-9 {
        let target = (lambda + dl).min(lambda_max);
        match qre_at(&m, target, &sigma) {
            Some(s) => {
                sigma = s;
                lambda = target;
                dl *= 1.5;
            }
            None => dl *= 0.25,
        }
    }
    clean_simplex(sigma)
}
