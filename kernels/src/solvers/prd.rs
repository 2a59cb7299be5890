//! `prd`: projected replicator dynamics (Lanctot et al. 2017), single population.
//! On the range-normalised matrix: `σ ← proj(σ + dt·σ⊙(Mσ − σᵀMσ))`, where the projection
//! floors every entry at `gamma` and renormalises; the result is the average of all iterates,
//! as in OpenSpiel's default.

use crate::matrix::{clean_simplex, Matrix};

pub fn prd(m: &Matrix, iterations: usize, dt: f64, gamma: f64) -> Vec<f64> {
    let n = m.n();
    if n == 0 {
        return vec![];
    }
    let m = m.normalized();
    let mut sigma = vec![1.0 / n as f64; n];
    let mut avg = vec![0.0; n];
    for _ in 0..iterations.max(1) {
        let u = m.mul_vec(&sigma);
        let v: f64 = sigma.iter().zip(&u).map(|(s, x)| s * x).sum();
        for k in 0..n {
            sigma[k] = (sigma[k] + dt * sigma[k] * (u[k] - v)).max(gamma);
        }
        let s: f64 = sigma.iter().sum();
        sigma.iter_mut().for_each(|x| *x /= s);
        avg.iter_mut().zip(&sigma).for_each(|(a, s)| *a += s);
    }
    clean_simplex(avg)
}
