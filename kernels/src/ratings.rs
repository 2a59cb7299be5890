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
    let loglik = |t: &DVector<f64>| -> f64 {
        let mut l = 0.0;
        for a in 0..r {
            for b in 0..r {
                if a != b && w[(a, b)] > 0.0 {
                    // ln σ(d) = −softplus(−d), computed stably.
                    let x = t[b] - t[a];
                    l -= w[(a, b)] * (x.max(0.0) + (-x.abs()).exp().ln_1p());
                }
            }
        }
        l
    };
    let j = DMatrix::from_element(r, r, 1.0 / r as f64);
    let fisher_and_grad = |t: &DVector<f64>| {
        let mut f = DMatrix::zeros(r, r);
        let mut g = DVector::zeros(r);
        for a in 0..r {
            for b in 0..r {
                if a == b {
                    continue;
                }
                let nab = w[(a, b)] + w[(b, a)];
                if nab == 0.0 {
                    continue;
                }
                let p = 1.0 / (1.0 + (t[b] - t[a]).exp());
                g[a] += w[(a, b)] - nab * p;
                if a < b {
                    let h = nab * p * (1.0 - p);
                    f[(a, a)] += h;
                    f[(b, b)] += h;
                    f[(a, b)] -= h;
                    f[(b, a)] -= h;
                }
            }
        }
        (f, g)
    };
    // Converged when the gradient (in games) is at rounding level for the busiest policy:
    // an absolute threshold never triggers on large logs and would spend every iteration.
    let busiest = (0..r)
        .map(|a| (0..r).map(|b| w[(a, b)] + w[(b, a)]).sum::<f64>())
        .fold(1.0, f64::max);
    let mut theta = DVector::zeros(r);
    for _ in 0..200 {
        let (f, g) = fisher_and_grad(&theta);
        if g.amax() < 1e-12 * busiest {
            break;
        }
        let step = (&f + &j).lu().solve(&g).ok_or_else(|| {
            KernelError::Numerical("Bradley–Terry: singular Fisher matrix".into())
        })?;
        let l0 = loglik(&theta);
        // Accept up to rounding of the log-likelihood itself (a sum over every game).
        let slack = 1e-12 * l0.abs().max(1.0);
        let mut alpha = 1.0;
        let mut moved = false;
        while alpha > 1e-10 {
            let cand = &theta + &step * alpha;
            if loglik(&cand) >= l0 - slack {
                theta = cand;
                moved = true;
                break;
            }
            alpha *= 0.5;
        }
        if !moved {
            // No step improves on rounding: θ is the optimum to working precision.
            break;
        }
        let mean = theta.mean();
        theta.add_scalar_mut(-mean);
    }
    let (f, _) = fisher_and_grad(&theta);
    let cov = (&f + &j)
        .try_inverse()
        .ok_or_else(|| KernelError::Numerical("Bradley–Terry: singular Fisher matrix".into()))?
        - &j;
    for (a, &i) in rated.iter().enumerate() {
        let rating = ELO_BASE + ELO_SCALE * theta[a];
        let se = ELO_SCALE * cov[(a, a)].max(0.0).sqrt();
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

/// Sequential Elo over `(i, j, score_i)` results in the given order, K = 32, start 1500.
pub fn elo(n: usize, results: impl IntoIterator<Item = (usize, usize, f64)>) -> Vec<f64> {
    const K: f64 = 32.0;
    let mut r = vec![ELO_BASE; n];
    for (i, j, s) in results {
        if i == j {
            continue;
        }
        let expected = 1.0 / (1.0 + 10f64.powf((r[j] - r[i]) / 400.0));
        r[i] += K * (s - expected);
        r[j] -= K * (s - expected);
    }
    r
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
