//! Least squares `min ‖A y − b‖` for a small dense tall A of full column rank, by Householder
//! QR on contiguous columns (Golub & Van Loan §5.3). It is the inner step of every support
//! check of the `mene` kernels (about one per Level 2 subgame per epoch), where a
//! general-purpose QR spent most of its time in generic strides and bounds.

use crate::matrix::dot;

/// A tall `rows × cols` matrix stored column by column (`rows ≥ cols`).
pub struct Columns {
    rows: usize,
    cols: usize,
    a: Vec<f64>,
}

impl Columns {
    pub fn from_fn(rows: usize, cols: usize, f: impl Fn(usize, usize) -> f64) -> Columns {
        assert!(rows >= cols, "least squares needs rows ≥ columns");
        let mut a = Vec::with_capacity(rows * cols);
        for c in 0..cols {
            a.extend((0..rows).map(|r| f(r, c)));
        }
        Columns { rows, cols, a }
    }

    /// From entries already in column order (`a[c * rows + r]`).
    pub fn from_column_major(rows: usize, cols: usize, a: Vec<f64>) -> Columns {
        assert!(rows >= cols, "least squares needs rows ≥ columns");
        assert_eq!(a.len(), rows * cols, "entries");
        Columns { rows, cols, a }
    }

    /// The least-squares solution of `A y = b`, or `None` when some |R_kk| ≤ `tol` (rank
    /// deficient to that tolerance). Consumes the matrix: the reflections overwrite it.
    ///
    /// On x86-64 with AVX2 the same code is compiled for 4-wide vectors; it does the same
    /// operations in the same order (no fused multiply-add), so the result is the same to
    /// the bit.
    pub fn solve(self, b: Vec<f64>, tol: f64) -> Option<Vec<f64>> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { self.solve_avx2(b, tol) };
        }
        self.solve_portable(b, tol)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn solve_avx2(self, b: Vec<f64>, tol: f64) -> Option<Vec<f64>> {
        self.solve_portable(b, tol)
    }

    #[inline(always)]
    fn solve_portable(mut self, mut b: Vec<f64>, tol: f64) -> Option<Vec<f64>> {
        let (m, n) = (self.rows, self.cols);
        assert_eq!(b.len(), m, "right-hand side length");
        let mut diag = vec![0.0; n];
        for k in 0..n {
            let (done, rest) = self.a.split_at_mut((k + 1) * m);
            let v = &mut done[k * m + k..];
            let norm = dot(v, v).sqrt();
            if norm <= tol {
                return None;
            }
            // H = I − 2wwᵀ/wᵀw with w = x − αe₁ and α = −sign(x₀)‖x‖, so that |w₀| =
            // |x₀| + ‖x‖ (no cancellation) and wᵀw = 2‖x‖|w₀|.
            let alpha = if v[0] < 0.0 { norm } else { -norm };
            v[0] -= alpha;
            let beta = 1.0 / (norm * v[0].abs());
            let reflect = |y: &mut [f64]| {
                let f = dot(v, y) * beta;
                for (yi, wi) in y.iter_mut().zip(v.iter()) {
                    *yi -= f * wi;
                }
            };
            for col in rest.chunks_mut(m) {
                reflect(&mut col[k..]);
            }
            reflect(&mut b[k..]);
            diag[k] = alpha;
        }
        // Back substitution on R (above the diagonal, column j holds R[·, j]).
        let mut y = vec![0.0; n];
        for k in (0..n).rev() {
            let mut s = b[k];
            for (j, yj) in y.iter().enumerate().skip(k + 1) {
                s -= self.a[j * m + k] * yj;
            }
            y[k] = s / diag[k];
        }
        Some(y)
    }
}

#[cfg(test)]
mod tests {
    use super::Columns;
    use nalgebra::{DMatrix, DVector};

    /// Agrees with nalgebra's SVD least squares on random tall systems, consistent or not.
    #[test]
    fn agrees_with_the_svd_solution() {
        let mut r = crate::rng::SplitMix64::new(3);
        for (rows, cols) in [(1, 1), (2, 1), (5, 5), (8, 3), (31, 30), (60, 41)] {
            let a: Vec<f64> = (0..rows * cols).map(|_| r.next_f64() - 0.5).collect();
            let b: Vec<f64> = (0..rows).map(|_| r.next_f64() - 0.5).collect();
            let ours = Columns::from_fn(rows, cols, |i, j| a[i * cols + j])
                .solve(b.clone(), 1e-12)
                .expect("random matrices have full rank");
            let svd = DMatrix::from_row_slice(rows, cols, &a).svd(true, true);
            let theirs = svd.solve(&DVector::from_vec(b), 1e-14).unwrap();
            for (x, y) in ours.iter().zip(theirs.iter()) {
                assert!(
                    (x - y).abs() <= 1e-9 * (1.0 + y.abs()),
                    "{rows}x{cols}: {x} vs {y}"
                );
            }
        }
    }

    /// The AVX2 build and the portable one give the same solution to the bit (on a CPU
    /// without AVX2 both calls take the portable route).
    #[test]
    fn vector_and_portable_builds_agree_to_the_bit() {
        let mut r = crate::rng::SplitMix64::new(8);
        for (rows, cols) in [(3, 2), (30, 29), (47, 13)] {
            let a: Vec<f64> = (0..rows * cols).map(|_| r.next_f64() - 0.5).collect();
            let b: Vec<f64> = (0..rows).map(|_| r.next_f64()).collect();
            let m = || Columns::from_fn(rows, cols, |i, j| a[i * cols + j]);
            let fast = m().solve(b.clone(), 1e-12).unwrap();
            let plain = m().solve_portable(b.clone(), 1e-12).unwrap();
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&plain), "{rows}x{cols}");
        }
    }

    /// A repeated column is rank deficiency: no answer rather than a huge one.
    #[test]
    fn rank_deficiency_gives_none() {
        let m = Columns::from_fn(4, 3, |i, j| if j == 2 { i as f64 } else { (i + j) as f64 });
        assert!(m.solve(vec![1.0, 2.0, 3.0, 4.0], 1e-9).is_none());
        let zero = Columns::from_fn(3, 2, |_, j| if j == 0 { 1.0 } else { 0.0 });
        assert!(zero.solve(vec![1.0; 3], 1e-9).is_none());
    }
}
