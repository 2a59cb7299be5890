//! A small dense square matrix: the meta-game payoff table and its welfare companions.

use std::ops::{Index, IndexMut};

use serde::{Deserialize, Serialize};

use crate::KernelError;

/// `Σ a_k b_k` over the common length, in four interleaved partial sums (k mod 4) added
/// pairwise, then the tail in order. A single running sum waits on each addition's latency;
/// four independent ones vectorise. The order is fixed, so the result is the same on every
/// machine and in every caller (no fused multiply-add: Rust does not contract). Always
/// inlined, so that a caller compiled for AVX2 (the least squares, the pivots) gets it in
/// 4-wide vectors too.
#[inline(always)]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    let body = len / 4 * 4;
    let mut acc = [0.0f64; 4];
    for (x, y) in a[..body].chunks_exact(4).zip(b[..body].chunks_exact(4)) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in a[body..].iter().zip(&b[body..]) {
        sum += x * y;
    }
    sum
}

/// [`dot`] of each of `R` equally long rows with `x`, to the bit, with the rows' partial sums
/// interleaved: R independent chains of additions where [`dot`] alone waits on one. A
/// single dot of a 26- or 50-long row is bound by that latency, not by arithmetic.
#[inline(always)]
pub(crate) fn dots<const R: usize>(rows: [&[f64]; R], x: &[f64]) -> [f64; R] {
    let width = rows.first().map_or(0, |r| r.len());
    assert!(rows.iter().all(|r| r.len() == width), "rows of one length");
    let len = width.min(x.len());
    let body = len / 4 * 4;
    let mut acc = [[0.0f64; 4]; R];
    let rows = rows.map(|r| &r[..len]);
    for (c, y) in x[..body].chunks_exact(4).enumerate() {
        for (acc, row) in acc.iter_mut().zip(&rows) {
            let a = &row[4 * c..4 * c + 4];
            for k in 0..4 {
                acc[k] += a[k] * y[k];
            }
        }
    }
    let mut out = [0.0; R];
    for ((out, acc), row) in out.iter_mut().zip(&acc).zip(&rows) {
        let mut sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
        for (a, b) in row[body..].iter().zip(&x[body..len]) {
            sum += a * b;
        }
        *out = sum;
    }
    out
}

/// Runs `f`, a loop over [`dot`]s or [`dots`], compiled for 4-wide vectors when the CPU has
/// AVX2 (the baseline target has 2-wide SSE2). The arithmetic is the same either way (no
/// fused multiply-add), so the result is the same to the bit.
#[inline(always)]
pub(crate) fn vectorised<T>(f: impl FnOnce() -> T) -> T {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<T>(f: impl FnOnce() -> T) -> T {
            f()
        }
        // SAFETY: the CPU supports AVX2, checked just above.
        return unsafe { avx2(f) };
    }
    f()
}

/// Row-major square matrix. `m[(i, j)]` is the value to row policy `i` against column policy `j`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    n: usize,
    data: Vec<f64>,
}

impl Matrix {
    pub fn zeros(n: usize) -> Self {
        Self::filled(n, 0.0)
    }

    pub fn filled(n: usize, value: f64) -> Self {
        Matrix {
            n,
            data: vec![value; n * n],
        }
    }

    /// Builds from rows; every row must have `rows.len()` finite entries.
    pub fn from_rows(rows: &[Vec<f64>]) -> Result<Self, KernelError> {
        let n = rows.len();
        let mut data = Vec::with_capacity(n * n);
        for (i, row) in rows.iter().enumerate() {
            if row.len() != n {
                return Err(KernelError::InvalidInput(format!(
                    "matrix row {i} has {} entries, expected {n} (the matrix must be square)",
                    row.len()
                )));
            }
            for (j, &x) in row.iter().enumerate() {
                if !x.is_finite() {
                    return Err(KernelError::InvalidInput(format!(
                        "matrix entry ({i}, {j}) is not finite: {x}"
                    )));
                }
            }
            data.extend_from_slice(row);
        }
        Ok(Matrix { n, data })
    }

    pub fn from_fn(n: usize, mut f: impl FnMut(usize, usize) -> f64) -> Self {
        let mut data = Vec::with_capacity(n * n);
        for i in 0..n {
            for j in 0..n {
                data.push(f(i, j));
            }
        }
        Matrix { n, data }
    }

    /// The n×n matrix whose rows are the consecutive runs of n entries of `values` (which
    /// must hold n² of them).
    pub(crate) fn from_row_major(n: usize, values: Vec<f64>) -> Self {
        assert_eq!(values.len(), n * n, "an n×n matrix has n² entries");
        Matrix { n, data: values }
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.n..(i + 1) * self.n]
    }

    pub fn to_rows(&self) -> Vec<Vec<f64>> {
        (0..self.n).map(|i| self.row(i).to_vec()).collect()
    }

    /// `M x`.
    pub fn mul_vec(&self, x: &[f64]) -> Vec<f64> {
        let rows: Vec<usize> = (0..self.n).collect();
        self.rows_dot(&rows, x)
    }

    /// `(M x)_i` for each i in `rows`, in that order: four rows at a time ([`dots`]).
    pub(crate) fn rows_dot(&self, rows: &[usize], x: &[f64]) -> Vec<f64> {
        vectorised(|| {
            let mut out = Vec::with_capacity(rows.len());
            let blocks = rows.chunks_exact(4);
            let tail = blocks.remainder();
            for b in blocks {
                let b: [usize; 4] = b.try_into().expect("a block of four");
                out.extend(dots(b.map(|i| self.row(i)), x));
            }
            out.extend(tail.iter().map(|&i| dot(self.row(i), x)));
            out
        })
    }

    /// `xᵀ M y`.
    pub fn bilinear(&self, x: &[f64], y: &[f64]) -> f64 {
        // Rows where x is 0 add nothing (a mixture's support is often a fraction of n), so
        // they are skipped; the other terms are summed in the same order as before.
        let rows: Vec<usize> = (0..self.n.min(x.len())).filter(|&i| x[i] != 0.0).collect();
        let my = self.rows_dot(&rows, y);
        rows.iter().zip(&my).map(|(&i, d)| x[i] * d).sum::<f64>()
    }

    pub fn transpose(&self) -> Matrix {
        Matrix::from_fn(self.n, |i, j| self[(j, i)])
    }

    /// `M + Mᵀ`.
    pub fn plus_transpose(&self) -> Matrix {
        Matrix::from_fn(self.n, |i, j| self[(i, j)] + self[(j, i)])
    }

    /// The principal sub-matrix on `idx` (in the order given).
    pub fn sub(&self, idx: &[usize]) -> Matrix {
        let mut data = Vec::with_capacity(idx.len() * idx.len());
        for &i in idx {
            let row = self.row(i);
            data.extend(idx.iter().map(|&j| row[j]));
        }
        Matrix { n: idx.len(), data }
    }

    /// The principal sub-matrix without policy `c` (`sub` of every other index, in order),
    /// copied in two runs per row.
    pub fn without(&self, c: usize) -> Matrix {
        assert!(c < self.n, "policy {c} of {}", self.n);
        let n = self.n - 1;
        let mut data = Vec::with_capacity(n * n);
        for i in (0..self.n).filter(|&i| i != c) {
            let row = self.row(i);
            data.extend_from_slice(&row[..c]);
            data.extend_from_slice(&row[c + 1..]);
        }
        Matrix { n, data }
    }

    /// (min, max) over all entries; (0, 0) for an empty matrix.
    pub fn min_max(&self) -> (f64, f64) {
        if self.data.is_empty() {
            return (0.0, 0.0);
        }
        // Eight independent lanes of plain comparisons, which vectorise (a chain of
        // `f64::min` does not); NaN is skipped either way.
        const LANES: usize = 8;
        let (mut lo, mut hi) = ([f64::INFINITY; LANES], [f64::NEG_INFINITY; LANES]);
        let chunks = self.data.chunks_exact(LANES);
        let tail = chunks.remainder();
        for chunk in chunks {
            for k in 0..LANES {
                lo[k] = if chunk[k] < lo[k] { chunk[k] } else { lo[k] };
                hi[k] = if chunk[k] > hi[k] { chunk[k] } else { hi[k] };
            }
        }
        let lo = tail.iter().chain(&lo).fold(f64::INFINITY, |l, &x| l.min(x));
        let hi = tail
            .iter()
            .chain(&hi)
            .fold(f64::NEG_INFINITY, |h, &x| h.max(x));
        (lo, hi)
    }

    /// max − min over all entries.
    pub fn range(&self) -> f64 {
        let (lo, hi) = self.min_max();
        hi - lo
    }

    /// The affine image `(M − lo) / range` in [0, 1]; the identity shape if the matrix is constant.
    /// Equilibria are invariant under this map, so solvers work on it for scale-free tolerances.
    pub fn normalized(&self) -> Matrix {
        let (lo, hi) = self.min_max();
        let span = hi - lo;
        if span <= 0.0 {
            return Matrix::zeros(self.n);
        }
        if lo == 0.0 && span == 1.0 {
            // Already normalised (a principal submatrix of a normalised game usually is):
            // the map is the identity to the bit.
            return self.clone();
        }
        Matrix {
            n: self.n,
            data: self.data.iter().map(|x| (x - lo) / span).collect(),
        }
    }

    /// True when `M + Mᵀ` is constant within `rel_tol` of the payoff range: a symmetric
    /// constant-sum (zero-sum after a shift) game. Returns that constant.
    pub fn constant_sum(&self, rel_tol: f64) -> Option<f64> {
        if self.n == 0 {
            return Some(0.0);
        }
        let tol = rel_tol * self.range().max(f64::MIN_POSITIVE);
        let c = 2.0 * self[(0, 0)];
        for i in 0..self.n {
            for j in i..self.n {
                if (self[(i, j)] + self[(j, i)] - c).abs() > tol {
                    return None;
                }
            }
        }
        Some(c)
    }

    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }
}

impl Index<(usize, usize)> for Matrix {
    type Output = f64;
    fn index(&self, (i, j): (usize, usize)) -> &f64 {
        &self.data[i * self.n + j]
    }
}

impl IndexMut<(usize, usize)> for Matrix {
    fn index_mut(&mut self, (i, j): (usize, usize)) -> &mut f64 {
        &mut self.data[i * self.n + j]
    }
}

/// Shannon entropy in nats, `−Σ p ln p` with `0 ln 0 = 0`.
pub fn entropy(p: &[f64]) -> f64 {
    // `0.0 - s` rather than `-s`: a pure mixture has entropy +0, not −0.
    0.0 - p
        .iter()
        .filter(|&&x| x > 0.0)
        .map(|&x| x * x.ln())
        .sum::<f64>()
}

/// Clamps tiny negatives from solvers to zero and rescales onto the simplex.
pub fn clean_simplex(mut p: Vec<f64>) -> Vec<f64> {
    for x in p.iter_mut() {
        if !x.is_finite() || *x < 0.0 {
            *x = 0.0;
        }
    }
    let s: f64 = p.iter().sum();
    if s > 0.0 {
        p.iter_mut().for_each(|x| *x /= s);
    } else if !p.is_empty() {
        let u = 1.0 / p.len() as f64;
        p.iter_mut().for_each(|x| *x = u);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::{dot, dots, Matrix};

    /// Four rows at once give each row's [`dot`] to the bit, at every length around the lane
    /// width (x longer than the rows too); so do `mul_vec` and `bilinear`, built on them.
    #[test]
    fn interleaved_dots_are_each_rows_dot_to_the_bit() {
        let mut r = crate::rng::SplitMix64::new(11);
        for len in 0..14 {
            let rows: Vec<Vec<f64>> = (0..4)
                .map(|_| (0..len).map(|_| r.next_f64() - 0.5).collect())
                .collect();
            let x: Vec<f64> = (0..len + len % 3).map(|_| r.next_f64()).collect();
            let got = dots([&rows[0][..], &rows[1], &rows[2], &rows[3]], &x);
            for (row, g) in rows.iter().zip(got) {
                assert_eq!(g.to_bits(), dot(row, &x).to_bits(), "len {len}");
            }
        }
        for n in [1, 3, 4, 7, 50] {
            let m = Matrix::from_fn(n, |_, _| r.next_f64() - 0.5);
            let x: Vec<f64> = (0..n)
                .map(|k| if k % 3 == 1 { 0.0 } else { r.next_f64() })
                .collect();
            let plain: Vec<f64> = (0..n).map(|i| dot(m.row(i), &x)).collect();
            assert_eq!(m.mul_vec(&x), plain, "n={n}");
            let bilinear: f64 = (0..n)
                .filter(|&i| x[i] != 0.0)
                .map(|i| x[i] * dot(m.row(i), &x))
                .sum();
            assert_eq!(m.bilinear(&x, &x).to_bits(), bilinear.to_bits(), "n={n}");
        }
    }

    /// The four-lane dot product is the plain one up to rounding, at every length around its
    /// lane width, and exact where every partial sum is (small integers).
    #[test]
    fn dot_is_the_sum_of_products() {
        let mut r = crate::rng::SplitMix64::new(4);
        for len in 0..13 {
            let a: Vec<f64> = (0..len).map(|_| r.next_f64() - 0.5).collect();
            let b: Vec<f64> = (0..len).map(|_| r.next_f64() - 0.5).collect();
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - plain).abs() <= 1e-15, "len {len}");
            let ints: Vec<f64> = (0..len).map(|k| k as f64 - 3.0).collect();
            let exact: f64 = (0..len).map(|k| (k as f64 - 3.0) * (k as f64 - 3.0)).sum();
            assert_eq!(dot(&ints, &ints), exact, "len {len}");
        }
        // Extra entries of the longer slice are ignored.
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[1.0, 1.0]), 3.0);
    }

    /// `without(c)` is `sub` of every other index, for every c (first and last included).
    #[test]
    fn without_is_the_sub_matrix_of_the_others() {
        let m = Matrix::from_fn(5, |i, j| (10 * i + j) as f64);
        for c in 0..5 {
            let others: Vec<usize> = (0..5).filter(|&k| k != c).collect();
            assert_eq!(m.without(c), m.sub(&others), "c={c}");
        }
        assert_eq!(Matrix::from_fn(1, |_, _| 1.0).without(0).n(), 0);
    }

    /// The laned `min_max` agrees with a plain fold on every size around its lane width, and
    /// `sub` and `normalized` with their definitions.
    #[test]
    fn min_max_sub_and_normalized_match_their_definitions() {
        let mut r = crate::rng::SplitMix64::new(3);
        for n in 1..12 {
            let m = Matrix::from_fn(n, |_, _| r.next_f64() * 4.0 - 2.0);
            let fold = m
                .as_slice()
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| {
                    (l.min(x), h.max(x))
                });
            assert_eq!(m.min_max(), fold, "n={n}");
            let idx: Vec<usize> = (0..n).filter(|k| k % 3 != 1).collect();
            let sub = m.sub(&idx);
            for (a, &i) in idx.iter().enumerate() {
                for (b, &j) in idx.iter().enumerate() {
                    assert_eq!(sub[(a, b)], m[(i, j)]);
                }
            }
            let norm = m.normalized();
            let (lo, hi) = fold;
            for (x, y) in m.as_slice().iter().zip(norm.as_slice()) {
                let want = if hi > lo { (x - lo) / (hi - lo) } else { 0.0 };
                assert_eq!(*y, want);
            }
            // Normalising twice changes nothing, to the bit.
            assert_eq!(norm.normalized(), norm);
        }
    }
}
