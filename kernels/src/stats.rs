//! Cell statistics (DESIGN §4) and the dense matrices built from them (DESIGN §5).

use serde::{Deserialize, Serialize};

use crate::matrix::Matrix;
use crate::KernelError;

/// What one seat of one match contributes to cell (row = this seat's policy, col = opponent).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observation {
    pub row: usize,
    pub col: usize,
    /// This seat's payoff.
    pub payoff: f64,
    /// Per-match Nash welfare `sqrt(max(p_i,0)·max(p_j,0))` (symmetric in the seats).
    pub nw: f64,
    /// Per-match `sqrt(max(0,p_i−b_i)·max(0,p_j−b_j))`; a missing BATNA counts as 0.
    pub nw_plus: f64,
    pub agreement: Option<bool>,
    pub ef1: Option<bool>,
    /// 1 win, 0.5 draw, 0 loss for this seat (payoff compared with the opponent's).
    pub score: f64,
}

/// The raw facts of one match seen from seat i.
#[derive(Clone, Copy, Debug)]
pub struct SeatView {
    pub payoff_i: f64,
    pub payoff_j: f64,
    pub batna_i: Option<f64>,
    pub batna_j: Option<f64>,
    pub agreement: Option<bool>,
    pub ef1: Option<bool>,
}

impl SeatView {
    /// The observation for cell (row, col) from seat i's point of view.
    pub fn observe(&self, row: usize, col: usize) -> Observation {
        let (pi, pj) = (self.payoff_i, self.payoff_j);
        let gi = (pi - self.batna_i.unwrap_or(0.0)).max(0.0);
        let gj = (pj - self.batna_j.unwrap_or(0.0)).max(0.0);
        Observation {
            row,
            col,
            payoff: pi,
            nw: (pi.max(0.0) * pj.max(0.0)).sqrt(),
            nw_plus: (gi * gj).sqrt(),
            agreement: self.agreement,
            ef1: self.ef1,
            score: if pi > pj {
                1.0
            } else if pi == pj {
                0.5
            } else {
                0.0
            },
        }
    }

    /// The same match seen from seat j.
    pub fn swapped(&self) -> SeatView {
        SeatView {
            payoff_i: self.payoff_j,
            payoff_j: self.payoff_i,
            batna_i: self.batna_j,
            batna_j: self.batna_i,
            ..*self
        }
    }
}

/// Sufficient statistics of one cell (game, i, j).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CellStats {
    pub n: u64,
    pub sum: f64,
    pub sum_sq: f64,
    pub nw_sum: f64,
    pub nw_plus_sum: f64,
    pub agreements: u64,
    /// Matches that carry an `ef1` value and did not end with `agreement = false`.
    pub ef1_n: u64,
    pub ef1_true: u64,
    /// Sum of scores (win 1, draw 0.5) against the opponent, excluding self-play.
    pub score_sum: f64,
}

impl CellStats {
    pub fn add(&mut self, o: &Observation) {
        self.n += 1;
        self.sum += o.payoff;
        self.sum_sq += o.payoff * o.payoff;
        self.nw_sum += o.nw;
        self.nw_plus_sum += o.nw_plus;
        if o.agreement == Some(true) {
            self.agreements += 1;
        }
        if let Some(e) = o.ef1 {
            if o.agreement != Some(false) {
                self.ef1_n += 1;
                self.ef1_true += e as u64;
            }
        }
        if o.row != o.col {
            self.score_sum += o.score;
        }
    }

    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }

    /// Sample standard deviation (n − 1 denominator); 0 for fewer than 2 matches.
    pub fn std_dev(&self) -> f64 {
        if self.n < 2 {
            return 0.0;
        }
        let n = self.n as f64;
        let var = (self.sum_sq - self.sum * self.sum / n) / (n - 1.0);
        var.max(0.0).sqrt()
    }

    /// Normal-approximation 95% CI of the mean.
    pub fn ci95(&self) -> Option<(f64, f64)> {
        let m = self.mean()?;
        let half = 1.959_963_984_540_054 * self.std_dev() / (self.n as f64).sqrt();
        Some((m - half, m + half))
    }
}

/// How cells with no data are filled (DESIGN §5).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Missing {
    /// Mean of the known entries of the same column; 0 if the column has none.
    ColumnMean,
    Zero,
    Prior(f64),
}

impl std::str::FromStr for Missing {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "column-mean" => Ok(Missing::ColumnMean),
            "zero" => Ok(Missing::Zero),
            _ => match s.strip_prefix("prior=") {
                Some(x) => x
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .map(Missing::Prior)
                    .ok_or_else(|| format!("`{s}`: prior must be a finite number, e.g. prior=0.5")),
                None => Err(format!(
                    "unknown missing-cell policy `{s}`; expected column-mean, zero or prior=X"
                )),
            },
        }
    }
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missing::ColumnMean => f.write_str("column-mean"),
            Missing::Zero => f.write_str("zero"),
            Missing::Prior(x) => write!(f, "prior={x}"),
        }
    }
}

/// The dense matrices of one game, already imputed: no NaN anywhere.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GameMatrices {
    pub payoff: Matrix,
    pub counts: Matrix,
    pub nw: Matrix,
    pub nw_plus: Matrix,
    pub ef1: Matrix,
    /// Bradley–Terry scores: `score[i][j]` = wins + draws/2 of i against j.
    pub score: Matrix,
    /// `known[i*n+j]`: the payoff cell has data (n > 0).
    pub known: Vec<bool>,
}

impl GameMatrices {
    /// Builds from row-major cells (`cells[i*n+j]`).
    pub fn from_cells(
        n: usize,
        cells: &[CellStats],
        missing: Missing,
    ) -> Result<Self, KernelError> {
        if cells.len() != n * n {
            return Err(KernelError::InvalidInput(format!(
                "{} cells for {n} policies",
                cells.len()
            )));
        }
        let per = |f: &dyn Fn(&CellStats) -> Option<f64>| {
            let raw: Vec<Option<f64>> = cells.iter().map(f).collect();
            impute(n, &raw, missing)
        };
        let by_n = |c: &CellStats, s: f64| (c.n > 0).then(|| s / c.n as f64);
        Ok(GameMatrices {
            payoff: per(&|c| by_n(c, c.sum)),
            counts: Matrix::from_fn(n, |i, j| cells[i * n + j].n as f64),
            nw: per(&|c| by_n(c, c.nw_sum)),
            nw_plus: per(&|c| by_n(c, c.nw_plus_sum)),
            ef1: per(&|c| (c.ef1_n > 0).then(|| c.ef1_true as f64 / c.ef1_n as f64)),
            score: Matrix::from_fn(n, |i, j| cells[i * n + j].score_sum),
            known: cells.iter().map(|c| c.n > 0).collect(),
        })
    }

    pub fn n(&self) -> usize {
        self.payoff.n()
    }

    /// The same matrices restricted to `idx`.
    pub fn sub(&self, idx: &[usize]) -> GameMatrices {
        let n = self.n();
        GameMatrices {
            payoff: self.payoff.sub(idx),
            counts: self.counts.sub(idx),
            nw: self.nw.sub(idx),
            nw_plus: self.nw_plus.sub(idx),
            ef1: self.ef1.sub(idx),
            score: self.score.sub(idx),
            known: idx
                .iter()
                .flat_map(|&i| idx.iter().map(move |&j| (i, j)))
                .map(|(i, j)| self.known[i * n + j])
                .collect(),
        }
    }
}

/// Fills the `None` cells of a row-major table per the missing-cell policy.
pub fn impute(n: usize, raw: &[Option<f64>], missing: Missing) -> Matrix {
    let fill: Vec<f64> = (0..n)
        .map(|j| match missing {
            Missing::Zero => 0.0,
            Missing::Prior(x) => x,
            Missing::ColumnMean => {
                let known: Vec<f64> = (0..n).filter_map(|i| raw[i * n + j]).collect();
                if known.is_empty() {
                    0.0
                } else {
                    known.iter().sum::<f64>() / known.len() as f64
                }
            }
        })
        .collect();
    Matrix::from_fn(n, |i, j| raw[i * n + j].unwrap_or(fill[j]))
}

/// Aggregates observations into row-major cells.
pub fn aggregate(n: usize, obs: impl IntoIterator<Item = Observation>) -> Vec<CellStats> {
    let mut cells = vec![CellStats::default(); n * n];
    for o in obs {
        cells[o.row * n + o.col].add(&o);
    }
    cells
}
