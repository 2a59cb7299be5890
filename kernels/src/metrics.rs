//! Regret, exploitability and welfare at a mixture σ (DESIGN §5).

use serde::{Deserialize, Serialize};

use crate::matrix::Matrix;
use crate::stats::GameMatrices;

/// `u = Mσ`, `v = σᵀMσ`, `r = u − v`, exploitability `max_k r_k` (≥ 0 up to rounding).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub payoff_vs_sigma: Vec<f64>,
    pub value: f64,
    pub regret: Vec<f64>,
    pub exploitability: f64,
}

pub fn evaluate(m: &Matrix, sigma: &[f64]) -> Evaluation {
    let u = m.mul_vec(sigma);
    let value: f64 = sigma.iter().zip(&u).map(|(s, x)| s * x).sum();
    let regret: Vec<f64> = u.iter().map(|x| x - value).collect();
    let exploitability = regret.iter().copied().fold(0.0f64, f64::max);
    Evaluation {
        payoff_vs_sigma: u,
        value,
        regret,
        exploitability,
    }
}

/// Welfare at σ: `value = v`, `uw = σᵀ(M+Mᵀ)σ = 2v`, `nw`, `nw_plus`, `ef1` = σᵀXσ.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Welfare {
    pub value: f64,
    pub uw: f64,
    pub nw: f64,
    pub nw_plus: f64,
    pub ef1: f64,
}

pub fn welfare(g: &GameMatrices, sigma: &[f64]) -> Welfare {
    let value = g.payoff.bilinear(sigma, sigma);
    Welfare {
        value,
        uw: 2.0 * value,
        nw: g.nw.bilinear(sigma, sigma),
        nw_plus: g.nw_plus.bilinear(sigma, sigma),
        ef1: g.ef1.bilinear(sigma, sigma),
    }
}

/// The welfare measures that lifts and attribution are computed for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WelfareKind {
    Uw,
    Nw,
    NwPlus,
}

impl WelfareKind {
    pub const ALL: [WelfareKind; 3] = [WelfareKind::Uw, WelfareKind::Nw, WelfareKind::NwPlus];

    pub fn name(self) -> &'static str {
        match self {
            WelfareKind::Uw => "uw",
            WelfareKind::Nw => "nw",
            WelfareKind::NwPlus => "nw_plus",
        }
    }

    /// The matrix W with welfare `σᵀWσ`.
    pub fn matrix(self, g: &GameMatrices) -> Matrix {
        match self {
            WelfareKind::Uw => g.payoff.plus_transpose(),
            WelfareKind::Nw => g.nw.clone(),
            WelfareKind::NwPlus => g.nw_plus.clone(),
        }
    }
}

/// Entropy (nats) and support size (entries above `1e-9`) of σ.
pub fn support_size(sigma: &[f64]) -> usize {
    sigma.iter().filter(|&&x| x > 1e-9).count()
}
