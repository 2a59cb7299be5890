//! `cce`: the symmetric coarse-correlated equilibrium closest in KL divergence to the uniform
//! product distribution; σ is its marginal.
//!
//! The joint `P` must satisfy `Σ_{ij} P_ij (M[k,j] − M[i,j]) ≤ 0` for every deviation `k`
//! (and the mirrored condition for the column player, implied by symmetry of `P`). The KL
//! projection has the Gibbs form `P ∝ exp(−Σ_k λ_k g_k)` with the symmetrised gains `g_k`, and
//! `λ ≥ 0` minimises the log-partition function: a smooth convex problem in n variables,
//! solved here by projected Newton with backtracking.

use nalgebra::{DMatrix, DVector};

use crate::matrix::{clean_simplex, Matrix};

pub fn cce(m: &Matrix) -> Vec<f64> {
    let n = m.n();
    if n == 0 {
        return vec![];
    }
    let m = m.normalized();
    let cells = n * n;
    // gains[k][i*n+j] = symmetrised gain of deviating to k at (i, j).
    let gains: Vec<Vec<f64>> = (0..n)
        .map(|k| {
            (0..cells)
                .map(|c| {
                    let (i, j) = (c / n, c % n);
                    0.5 * ((m[(k, j)] - m[(i, j)]) + (m[(k, i)] - m[(j, i)]))
                })
                .collect()
        })
        .collect();
    let joint = |lambda: &[f64]| -> (f64, Vec<f64>) {
        let e: Vec<f64> = (0..cells)
            .map(|c| {
                -lambda
                    .iter()
                    .zip(&gains)
                    .map(|(l, g)| l * g[c])
                    .sum::<f64>()
            })
            .collect();
        let top = e.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let w: Vec<f64> = e.iter().map(|x| (x - top).exp()).collect();
        let z: f64 = w.iter().sum();
        let log_z = top + z.ln() - (cells as f64).ln();
        (log_z, w.into_iter().map(|x| x / z).collect())
    };
    let mut lambda = vec![0.0; n];
    for _ in 0..500 {
        let (f0, p) = joint(&lambda);
        let mean: Vec<f64> = gains
            .iter()
            .map(|g| g.iter().zip(&p).map(|(a, b)| a * b).sum())
            .collect();
        // ∇ = −E[g]; the active set holds λ_k = 0 with E[g_k] ≤ 0 (constraint slack).
        let free: Vec<usize> = (0..n)
            .filter(|&k| lambda[k] > 0.0 || mean[k] > 0.0)
            .collect();
        let violation = mean.iter().fold(0.0f64, |a, &x| a.max(x));
        let complementarity = free
            .iter()
            .fold(0.0f64, |a, &k| a.max((lambda[k] * mean[k]).abs()));
        if free.is_empty() || (violation < 1e-10 && complementarity < 1e-10) {
            break;
        }
        let f = free.len();
        let hess = DMatrix::from_fn(f, f, |a, b| {
            let (ga, gb) = (&gains[free[a]], &gains[free[b]]);
            (0..cells).map(|c| p[c] * ga[c] * gb[c]).sum::<f64>() - mean[free[a]] * mean[free[b]]
        }) + DMatrix::identity(f, f) * 1e-12;
        let grad = DVector::from_iterator(f, free.iter().map(|&k| -mean[k]));
        let dir = hess
            .clone()
            .cholesky()
            .map(|c| c.solve(&(-&grad)))
            .unwrap_or_else(|| -&grad);
        let mut step = 1.0;
        let mut improved = false;
        while step > 1e-12 {
            let mut trial = lambda.clone();
            for (a, &k) in free.iter().enumerate() {
                trial[k] = (lambda[k] + step * dir[a]).max(0.0);
            }
            let (f1, _) = joint(&trial);
            if f1 < f0 - 1e-16 {
                lambda = trial;
                improved = true;
                break;
            }
            step *= 0.5;
        }
        if !improved {
            break;
        }
    }
    let (_, p) = joint(&lambda);
    clean_simplex((0..n).map(|i| (0..n).map(|j| p[i * n + j]).sum()).collect())
}
