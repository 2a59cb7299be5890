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

/// A seat's score as the ratings count it: 1 win, ½ draw, 0 loss (its payoff against the
/// opponent's).
pub fn win_score(own: f64, other: f64) -> f64 {
    if own > other {
        1.0
    } else if own == other {
        0.5
    } else {
        0.0
    }
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
            score: win_score(pi, pj),
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

/// Fixed-point scale: every per-match quantity is quantised once to `round(x·2^32)`.
pub const FIXED_SCALE: f64 = 4_294_967_296.0;
/// Largest magnitude a payoff (or BATNA) may have so that fixed-point sums cannot overflow.
pub const MAX_MAGNITUDE: f64 = 2_147_483_648.0;

/// `round(x·2^32)`; `x` must satisfy `|x| < MAX_MAGNITUDE` (validated at decode).
pub fn quantize(x: f64) -> i64 {
    round_to_i64(x * FIXED_SCALE)
}

/// A fixed-point sum as a real number.
pub fn fixed_to_real(x: i128) -> f64 {
    // Through i64 where the sum fits (whenever a cell's payoffs, or their squares, sum to
    // under 2^31 in magnitude): the same integer rounds to the same f64, and i128 → f64 is a
    // slow software routine.
    let x = i64::try_from(x).map_or_else(|_| wide_to_f64(x), |x| x as f64);
    x / FIXED_SCALE
}

/// Kept out of line: inlined, the compiler computed it for every sum, whichever way the
/// branch went.
#[cold]
#[inline(never)]
fn wide_to_f64(x: i128) -> f64 {
    x as f64
}

/// The mean of `n` (> 0) values from their fixed-point sum, as [`CellStats::mean`] takes it.
pub fn fixed_mean(n: i64, sum: i128) -> f64 {
    fixed_to_real(sum) / n as f64
}

/// `y.round() as i64` (half away from zero) for |y| < 2^63, without the libm call that
/// `f64::round` is on baseline x86-64 (ingest rounds several values per record). Exact:
/// below 2^52 `y − trunc(y)` is exact (Sterbenz, or y itself when the truncation is 0),
/// and from 2^52 on every f64 is an integer, so the fraction is 0.
fn round_to_i64(y: f64) -> i64 {
    let t = y as i64;
    let frac = y - t as f64;
    t + i64::from(frac >= 0.5) - i64::from(frac <= -0.5)
}

/// Sufficient statistics of one cell (game, i, j).
///
/// All sums are exact integers in fixed point (see [`quantize`]): addition is associative and
/// a retraction cancels its insertion exactly, so an incremental engine and a batch pass agree
/// bit for bit. Squares are taken of the quantised value and scaled back by 2^32.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct CellStats {
    pub n: i64,
    /// Σ q(payoff).
    pub sum: i128,
    /// Σ q(payoff)² / 2^32 (floor division).
    pub sum_sq: i128,
    /// Σ q(per-match Nash welfare).
    pub nw_sum: i128,
    /// Σ q(per-match NW+).
    pub nw_plus_sum: i128,
    pub agreements: i64,
    /// Matches that carry an `ef1` value and did not end with `agreement = false`.
    pub ef1_n: i64,
    pub ef1_true: i64,
    /// Twice the score against the opponent (win 2, draw 1), excluding self-play.
    pub score2: i64,
}

impl CellStats {
    /// The statistics of one observation.
    pub fn of(o: &Observation) -> CellStats {
        let q = quantize(o.payoff) as i128;
        let ef1_counted = o.ef1.is_some() && o.agreement != Some(false);
        CellStats {
            n: 1,
            sum: q,
            sum_sq: (q * q) >> 32,
            nw_sum: quantize(o.nw) as i128,
            nw_plus_sum: quantize(o.nw_plus) as i128,
            agreements: (o.agreement == Some(true)) as i64,
            ef1_n: ef1_counted as i64,
            ef1_true: (ef1_counted && o.ef1 == Some(true)) as i64,
            score2: if o.row != o.col {
                round_to_i64(o.score * 2.0)
            } else {
                0
            },
        }
    }

    pub fn add(&mut self, o: &Observation) {
        self.plus(&CellStats::of(o));
    }

    pub fn plus(&mut self, o: &CellStats) {
        self.n += o.n;
        self.sum += o.sum;
        self.sum_sq += o.sum_sq;
        self.nw_sum += o.nw_sum;
        self.nw_plus_sum += o.nw_plus_sum;
        self.agreements += o.agreements;
        self.ef1_n += o.ef1_n;
        self.ef1_true += o.ef1_true;
        self.score2 += o.score2;
    }

    /// Multiplies every field by `k` (a retraction is `k = −1`).
    pub fn scaled(&self, k: i64) -> CellStats {
        let w = k as i128;
        CellStats {
            n: self.n * k,
            sum: self.sum * w,
            sum_sq: self.sum_sq * w,
            nw_sum: self.nw_sum * w,
            nw_plus_sum: self.nw_plus_sum * w,
            agreements: self.agreements * k,
            ef1_n: self.ef1_n * k,
            ef1_true: self.ef1_true * k,
            score2: self.score2 * k,
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == CellStats::default()
    }

    fn real(x: i128) -> f64 {
        fixed_to_real(x)
    }

    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| Self::real(self.sum) / self.n as f64)
    }

    pub fn nw_mean(&self) -> Option<f64> {
        (self.n > 0).then(|| Self::real(self.nw_sum) / self.n as f64)
    }

    pub fn nw_plus_mean(&self) -> Option<f64> {
        (self.n > 0).then(|| Self::real(self.nw_plus_sum) / self.n as f64)
    }

    pub fn ef1_rate(&self) -> Option<f64> {
        (self.ef1_n > 0).then(|| self.ef1_true as f64 / self.ef1_n as f64)
    }

    /// Wins + draws/2 against the opponent.
    pub fn score(&self) -> f64 {
        self.score2 as f64 / 2.0
    }

    /// Sample standard deviation (n − 1 denominator); 0 for fewer than 2 matches.
    pub fn std_dev(&self) -> f64 {
        if self.n < 2 {
            return 0.0;
        }
        let n = self.n as f64;
        let sum = Self::real(self.sum);
        let var = (Self::real(self.sum_sq) - sum * sum / n) / (n - 1.0);
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
        // Generic, not a function pointer, so that each statistic is inlined into its pass.
        fn per(
            n: usize,
            cells: &[CellStats],
            missing: Missing,
            f: impl Fn(&CellStats) -> Option<f64>,
        ) -> Matrix {
            // A full table (the usual case in a league) has nothing to impute: one pass.
            match cells.iter().map(&f).collect::<Option<Vec<f64>>>() {
                Some(full) => Matrix::from_row_major(n, full),
                None => impute(n, &cells.iter().map(&f).collect::<Vec<_>>(), missing),
            }
        }
        Ok(GameMatrices {
            payoff: per(n, cells, missing, CellStats::mean),
            counts: Matrix::from_row_major(n, cells.iter().map(|c| c.n as f64).collect()),
            nw: per(n, cells, missing, CellStats::nw_mean),
            nw_plus: per(n, cells, missing, CellStats::nw_plus_mean),
            ef1: per(n, cells, missing, CellStats::ef1_rate),
            score: Matrix::from_row_major(n, cells.iter().map(CellStats::score).collect()),
            known: cells.iter().map(|c| c.n > 0).collect(),
        })
    }

    pub fn n(&self) -> usize {
        self.payoff.n()
    }

    /// `Some(c)` when the cells with data form a constant-sum game (`M[i,j] + M[j,i] = c`
    /// wherever both are known, `M[i,i] = c/2` where known) but the imputed payoff matrix is
    /// not: the imputation turned a constant-sum game general-sum, which `mene` solves by a
    /// budgeted search instead of one LP. `Missing::Prior(c/2)` would keep it constant-sum.
    /// Tolerance as the solvers' (relative to the known entries' range).
    pub fn imputation_breaks_constant_sum(&self) -> Option<f64> {
        let (n, m) = (self.n(), &self.payoff);
        let tol = crate::solvers::CONSTANT_SUM_TOL;
        if self.known.iter().all(|&k| k) || m.constant_sum(tol).is_some() {
            return None;
        }
        let known = |i: usize, j: usize| self.known[i * n + j];
        let (lo, hi) = (0..n * n)
            .filter(|&k| self.known[k])
            .map(|k| m.as_slice()[k])
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                (lo.min(x), hi.max(x))
            });
        let tol = tol * (hi - lo).max(f64::MIN_POSITIVE);
        let mut c = None;
        for i in 0..n {
            for j in (i..n).filter(|&j| known(i, j) && known(j, i)) {
                let sum = m[(i, j)] + m[(j, i)];
                match c {
                    None => c = Some(sum),
                    Some(c) if (sum - c).abs() > tol => return None,
                    Some(_) => {}
                }
            }
        }
        c
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
            // A full column has nothing to fill (the usual case in a league).
            _ if (0..n).all(|i| raw[i * n + j].is_some()) => 0.0,
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

#[cfg(test)]
mod tests {
    use super::{round_to_i64, CellStats, GameMatrices, Missing, Observation, FIXED_SCALE};

    /// Cells of a 3-policy game from (row, col, payoff) observations.
    fn cells(obs: &[(usize, usize, f64)]) -> Vec<CellStats> {
        let mut cells = vec![CellStats::default(); 9];
        for &(row, col, payoff) in obs {
            cells[row * 3 + col].add(&Observation {
                row,
                col,
                payoff,
                nw: 0.0,
                nw_plus: 0.0,
                agreement: None,
                ef1: None,
                score: 0.0,
            });
        }
        cells
    }

    /// Column means break a constant-sum table with a missing pair; the prior c/2 keeps it;
    /// a full table, or known cells that are not constant-sum, report nothing.
    #[test]
    fn imputation_that_breaks_constant_sum_is_found() {
        // Constant sum 1 on the known cells; (0, 2) and (2, 0) have no data.
        let sparse = cells(&[
            (0, 0, 0.5),
            (1, 1, 0.5),
            (2, 2, 0.5),
            (0, 1, 0.9),
            (1, 0, 0.1),
            (1, 2, 0.75),
            (2, 1, 0.25),
        ]);
        let at = |missing| GameMatrices::from_cells(3, &sparse, missing).unwrap();
        assert_eq!(
            at(Missing::ColumnMean).imputation_breaks_constant_sum(),
            Some(1.0)
        );
        assert_eq!(
            at(Missing::Zero).imputation_breaks_constant_sum(),
            Some(1.0)
        );
        assert_eq!(
            at(Missing::Prior(0.5)).imputation_breaks_constant_sum(),
            None
        );
        let mut full = sparse.clone();
        full[2] = cells(&[(0, 2, 0.3)])[2];
        full[6] = cells(&[(2, 0, 0.7)])[6];
        let full = GameMatrices::from_cells(3, &full, Missing::ColumnMean).unwrap();
        assert_eq!(full.imputation_breaks_constant_sum(), None);
        let mut general = sparse;
        general[1] = cells(&[(0, 1, 0.95)])[1];
        let general = GameMatrices::from_cells(3, &general, Missing::ColumnMean).unwrap();
        assert_eq!(general.imputation_breaks_constant_sum(), None);
    }

    /// The libm-free rounding is `f64::round` to the integer: halves (away from zero), values
    /// a hair either side of them, both sides of 2^52 and 2^53, and random payoffs at scale.
    #[test]
    fn round_to_i64_is_round_half_away_from_zero() {
        let p52 = 4_503_599_627_370_496.0f64;
        let mut ys = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            -2.5,
            1e-300,
            -0.49999999999999994,
        ];
        for base in [
            0.5,
            2.5,
            1_234_567.5,
            p52 - 0.5,
            p52,
            p52 + 1.0,
            2.0 * p52 + 2.0,
            9.2e18,
        ] {
            let below = f64::from_bits(base.to_bits() - 1);
            let above = f64::from_bits(base.to_bits() + 1);
            ys.extend([base, below, above, -base, -below, -above]);
        }
        let mut r = crate::rng::SplitMix64::new(17);
        for _ in 0..200_000 {
            let x = (r.next_f64() - 0.5) * 2f64.powi(r.below(62) as i32 - 30);
            ys.push(x * FIXED_SCALE);
            ys.push(x);
        }
        for y in ys {
            assert_eq!(round_to_i64(y), y.round() as i64, "{y:e}");
        }
    }

    /// The fast conversion of fixed-point sums gives the plain i128 → f64 result to the bit,
    /// on both sides of 2^53 (where f64 starts rounding) and of the i64 range.
    #[test]
    fn real_equals_the_plain_conversion() {
        let mut r = crate::rng::SplitMix64::new(5);
        let mut values: Vec<i128> = vec![
            0,
            1,
            -1,
            (1 << 53) + 1,
            -(1 << 53) - 3,
            i64::MAX as i128,
            i64::MIN as i128,
            i64::MAX as i128 + 1,
            i64::MIN as i128 - 1,
            i128::MAX,
            i128::MIN,
        ];
        // Random 128-bit values shifted down to every magnitude.
        for shift in (0..127).step_by(3) {
            for _ in 0..50 {
                let x = ((r.next_u64() as i128) << 64 | r.next_u64() as i128) >> shift;
                values.push(x);
            }
        }
        for x in values {
            assert_eq!(
                CellStats::real(x).to_bits(),
                (x as f64 / FIXED_SCALE).to_bits(),
                "{x}"
            );
        }
    }
}
