//! Exact maximisation of Shannon entropy over a polytope.
//!
//! 1. One LP finds a relative-interior point, the implicit equalities and the coordinates
//!    forced to zero ([`Polytope::relative_interior`]).
//! 2. Zero coordinates are dropped, implicit equalities join the equality system, and the
//!    problem is re-parametrised on the null space of the equalities (`x = x_p + Z w`).
//! 3. A log-barrier Newton method minimises `t·Σ x ln x − Σ ln(slack)` for increasing `t`
//!    until the duality gap `m/t` is below 1e-11 nats.
//!
//! The entropy is strictly concave, so the maximiser is unique; it has the largest support
//! the polytope allows.

use nalgebra::{DMatrix, DVector};

use crate::polytope::{Polytope, RelativeInterior, Row};
use crate::KernelError;

/// Final duality gap of the barrier method, in nats.
const GAP_TOL: f64 = 1e-11;

#[derive(Clone, Debug)]
pub struct MaxEnt {
    /// The maximiser (all coordinates, zeros included).
    pub x: Vec<f64>,
    /// Its entropy over the entropy coordinates, in nats.
    pub entropy: f64,
}

pub fn max_entropy(p: &Polytope) -> Result<MaxEnt, KernelError> {
    max_entropy_within(p, &p.relative_interior()?)
}

/// [`max_entropy`] from a relative interior of `p` already known (its point, implicit
/// equalities and zero coordinates), skipping the LP.
pub fn max_entropy_within(p: &Polytope, ri: &RelativeInterior) -> Result<MaxEnt, KernelError> {
    // Kept coordinates: free ones and entropy coordinates that are not forced to zero.
    let keep: Vec<usize> = (0..p.dim)
        .filter(|&i| i >= p.n_entropy || !ri.zero[i])
        .collect();
    let n_ent_kept = keep.iter().filter(|&&i| i < p.n_entropy).count();
    let restrict = |row: &Row| Row::new(keep.iter().map(|&i| row.coef[i]).collect(), row.rhs);
    let mut eq: Vec<Row> = p.eq.iter().map(restrict).collect();
    let mut ineq = Vec::new();
    for (k, row) in p.ineq.iter().enumerate() {
        if ri.implicit[k] {
            eq.push(restrict(row));
        } else {
            ineq.push(restrict(row));
        }
    }
    let x0: Vec<f64> = keep.iter().map(|&i| ri.point[i]).collect();
    let xk = barrier_newton(n_ent_kept, &eq, &ineq, x0)?;
    let mut x = vec![0.0; p.dim];
    for (a, &i) in keep.iter().enumerate() {
        x[i] = xk[a];
    }
    for xi in x.iter_mut().take(p.n_entropy) {
        if *xi < 0.0 {
            *xi = 0.0;
        }
    }
    let entropy = crate::matrix::entropy(&x[..p.n_entropy]);
    Ok(MaxEnt { x, entropy })
}

/// Orthonormal null-space basis of `A` (rows) and the minimum-norm correction that puts `x0`
/// on `A x = b`.
fn null_space(eq: &[Row], d: usize, x0: &[f64]) -> (DMatrix<f64>, DVector<f64>) {
    if eq.is_empty() {
        return (DMatrix::identity(d, d), DVector::from_column_slice(x0));
    }
    let rows = eq.len().max(d);
    let mut a = DMatrix::zeros(rows, d);
    let mut r = DVector::zeros(rows);
    for (k, row) in eq.iter().enumerate() {
        for j in 0..d {
            a[(k, j)] = row.coef[j];
        }
        r[k] = row.rhs - row.eval(x0);
    }
    let svd = a.svd(true, true);
    let s_max = svd.singular_values.max();
    let tol = 1e-10 * s_max.max(1.0);
    let u = svd.u.as_ref().expect("u computed");
    let vt = svd.v_t.as_ref().expect("v_t computed");
    let mut xp = DVector::from_column_slice(x0);
    let mut null_cols = Vec::new();
    for (k, &sv) in svd.singular_values.iter().enumerate() {
        let v = vt.row(k).transpose();
        if sv > tol {
            let coef = u.column(k).dot(&r) / sv;
            xp += v * coef;
        } else {
            null_cols.push(v);
        }
    }
    let z = if null_cols.is_empty() {
        DMatrix::zeros(d, 0)
    } else {
        DMatrix::from_columns(&null_cols)
    };
    (z, xp)
}

fn barrier_newton(
    n_ent: usize,
    eq: &[Row],
    ineq: &[Row],
    x0: Vec<f64>,
) -> Result<Vec<f64>, KernelError> {
    let d = x0.len();
    let (z, xp) = null_space(eq, d, &x0);
    let k = z.ncols();
    if k == 0 {
        return Ok(xp.iter().copied().collect());
    }
    let g = DMatrix::from_fn(ineq.len(), d, |r, c| ineq[r].coef[c]);
    let h = DVector::from_iterator(ineq.len(), ineq.iter().map(|r| r.rhs));
    // Entropy coordinates are the first `n_ent` kept ones (keep is sorted).
    let objective = |x: &DVector<f64>, t: f64| -> Option<f64> {
        let mut f = 0.0;
        for i in 0..n_ent {
            if x[i] <= 0.0 {
                return None;
            }
            f += t * x[i] * x[i].ln() - x[i].ln();
        }
        let slack = &h - &g * x;
        for s in slack.iter() {
            if *s <= 0.0 {
                return None;
            }
            f -= s.ln();
        }
        Some(f)
    };
    let mut w = DVector::zeros(k);
    let mut x = &xp + &z * &w;
    if objective(&x, 1.0).is_none() {
        return Err(KernelError::Numerical(
            "max-entropy: start point is not strictly interior".into(),
        ));
    }
    let m_barrier = (ineq.len() + n_ent) as f64;
    let mut t = 1.0;
    loop {
        for _ in 0..100 {
            let slack = &h - &g * &x;
            let mut grad = DVector::zeros(d);
            let mut hess = DMatrix::zeros(d, d);
            for i in 0..n_ent {
                grad[i] = t * (x[i].ln() + 1.0) - 1.0 / x[i];
                hess[(i, i)] = t / x[i] + 1.0 / (x[i] * x[i]);
            }
            if !ineq.is_empty() {
                let inv = slack.map(|s| 1.0 / s);
                grad += g.tr_mul(&inv);
                let gs = DMatrix::from_fn(ineq.len(), d, |r, c| g[(r, c)] * inv[r]);
                hess += gs.tr_mul(&gs);
            }
            let gw = z.tr_mul(&grad);
            let hw = z.tr_mul(&(&hess * &z));
            let step = match hw.clone().cholesky() {
                Some(ch) => ch.solve(&(-&gw)),
                None => hw.lu().solve(&(-&gw)).ok_or_else(|| {
                    KernelError::Numerical("max-entropy: singular Newton system".into())
                })?,
            };
            let decrement = -gw.dot(&step);
            if decrement / 2.0 <= 1e-12 {
                break;
            }
            let f0 = objective(&x, t).expect("current point feasible");
            let dx = &z * &step;
            let mut alpha = 1.0;
            let mut moved = false;
            while alpha > 1e-14 {
                let xn = &x + &dx * alpha;
                if let Some(f1) = objective(&xn, t) {
                    if f1 <= f0 - 0.25 * alpha * decrement {
                        w += &step * alpha;
                        x = &xp + &z * &w;
                        moved = true;
                        break;
                    }
                }
                alpha *= 0.5;
            }
            if !moved {
                break;
            }
        }
        if m_barrier / t < GAP_TOL {
            break;
        }
        t *= 20.0;
    }
    Ok(x.iter().copied().collect())
}
