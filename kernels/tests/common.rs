#![allow(dead_code)]
use nashflow_kernels::rng::SplitMix64;
use nashflow_kernels::Matrix;

pub fn random_matrix(n: usize, seed: u64) -> Matrix {
    let mut r = SplitMix64::new(seed);
    Matrix::from_fn(n, |_, _| r.next_f64() * 2.0 - 1.0)
}

pub fn random_zero_sum(n: usize, seed: u64) -> Matrix {
    let a = random_matrix(n, seed);
    Matrix::from_fn(n, |i, j| a[(i, j)] - a[(j, i)])
}

pub fn rps() -> Matrix {
    Matrix::from_rows(&[
        vec![0.0, -1.0, 1.0],
        vec![1.0, 0.0, -1.0],
        vec![-1.0, 1.0, 0.0],
    ])
    .unwrap()
}

/// Largest regret of σ relative to the payoff range (0 at an exact NE).
pub fn rel_exploitability(m: &Matrix, sigma: &[f64]) -> f64 {
    let e = nashflow_kernels::metrics::evaluate(m, sigma).exploitability;
    e / m.range().max(1e-300)
}

pub fn assert_close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol, "{a:?} vs {b:?} (tol {tol})");
    }
}
