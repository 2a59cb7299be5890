//! `alpharank`: single-population α-Rank (Omidshafiei et al. 2019) with the local selection
//! model. A mutant `r` invading a monomorphic population of `s` has fitness `M[r,s]` against
//! the resident's `M[s,r]`; with `u = α(M[r,s] − M[s,r])` its fixation probability is
//! `ρ = (1 − e^{−u}) / (1 − e^{−m·u})` (`1/m` when u = 0). The chain moves s → r with
//! probability `ρ/(n−1)`; the result is its stationary distribution.
//!
//! Payoffs are used raw (α carries the scale, as in the paper). Everything is computed in the
//! log domain, including the stationary distribution (GTH elimination, which needs only
//! additions, products and quotients of non-negative numbers), so large `α·payoff` never
//! overflows or underflows into NaN.

use crate::matrix::{clean_simplex, Matrix};

/// `ln ρ` for selection strength `u` and population size `m`.
pub fn log_fixation(u: f64, m: f64) -> f64 {
    if u.abs() < 1e-14 {
        return -m.ln();
    }
    // ln(1 − e^{−x}) for x > 0, accurate for small and large x.
    let ln_one_minus_exp_neg = |x: f64| (-(-x).exp_m1()).ln();
    if u > 0.0 {
        ln_one_minus_exp_neg(u) - ln_one_minus_exp_neg(m * u)
    } else {
        let a = -u;
        -(m - 1.0) * a + ln_one_minus_exp_neg(a) - ln_one_minus_exp_neg(m * a)
    }
}

fn log_add(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

pub fn alpharank(m: &Matrix, population: f64, alpha: f64) -> Vec<f64> {
    let n = m.n();
    if n <= 1 {
        return vec![1.0; n];
    }
    let eta = -((n - 1) as f64).ln();
    // L[s][r] = ln P(s → r), off-diagonal only (GTH never reads the diagonal).
    let mut l = vec![vec![f64::NEG_INFINITY; n]; n];
    for s in 0..n {
        for r in 0..n {
            if r != s {
                l[s][r] = eta + log_fixation(alpha * (m[(r, s)] - m[(s, r)]), population);
            }
        }
    }
    stationary_log_gth(l)
}

/// Stationary distribution of the chain with log transition weights `l` (GTH algorithm).
fn stationary_log_gth(mut l: Vec<Vec<f64>>) -> Vec<f64> {
    let n = l.len();
    for k in (1..n).rev() {
        let s = (0..k).fold(f64::NEG_INFINITY, |acc, j| log_add(acc, l[k][j]));
        for row in l.iter_mut().take(k) {
            row[k] -= s;
        }
        for i in 0..k {
            for j in 0..k {
                if i != j {
                    let via = l[i][k] + l[k][j];
                    l[i][j] = log_add(l[i][j], via);
                }
            }
        }
    }
    let mut log_pi = vec![0.0; n];
    for k in 1..n {
        log_pi[k] = (0..k).fold(f64::NEG_INFINITY, |acc, i| {
            log_add(acc, log_pi[i] + l[i][k])
        });
    }
    let top = log_pi.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    clean_simplex(log_pi.iter().map(|x| (x - top).exp()).collect())
}
