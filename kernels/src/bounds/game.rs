//! The causal bounds of one game (DESIGN §6, issue #7): per-cell bounds, the interval payoff
//! matrix per Γ, and certificates for the decisions a leaderboard shows.
//!
//! Conventions (stated in the README):
//! * payoff range `[y_min, y_max]`: declared in the config, else the observed range of the
//!   game's payoffs; a declared range that excludes an observed payoff is an error;
//! * Manski share p = n(i,j) / Σ_k n(i,k) over cell observations (a self-play match gives
//!   (i,i) two);
//! * MSM exists for a cell (or a stratum of it) iff every match there carries a propensity;
//! * the stratified bound weights stratum s by w_s = P(s | i's matches) and fills a stratum
//!   where i never met j (or where MSM is unavailable) with that stratum's Manski bound; each
//!   end is then clamped into the cell's pooled bound of the same method (MSM at Γ, or Manski
//!   where the pooled cell has no MSM), so it is never wider than the pooled one;
//! * the box at Γ: MSM cells use the pooled MSM bound at Γ, other observed cells their
//!   Manski bound, unobserved cells `[y_min, y_max]`; σ stays fixed;
//! * rating ranks (Bradley–Terry) are judged on the interventional round robin: with every
//!   rated pair meeting equally often, the Bradley–Terry order is the order of mean score
//!   against the other rated policies, so "a rates above b" is the score contrast
//!   `(1/(R−1))·[(S_ab − S_ba) + Σ_{k≠a,b} (S_ak − S_bk)]` > 0 over the score box (score
//!   cells bounded like payoff cells, on the range [0, 1]);
//! * a claim is certified when it holds for every Γ up to the largest configured Γ.

use std::borrow::Borrow;

use good_lp::{microlp, variable, Expression, ProblemVariables, Solution, SolverModel};
use serde::{Deserialize, Serialize};

use super::interval::{
    contrast, manski, stratified, tipping_gamma, tv_certificate, Arm, Interval, Tipping,
};
use super::summary::{CellSummary, StratumStats};
use crate::matrix::Matrix;
use crate::polytope::lp_error;
use crate::KernelError;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoundsConfig {
    /// Sensitivity levels Γ ≥ 1 reported in `bounds`; the largest is the certification level.
    pub gammas: Vec<f64>,
    /// Declared payoff range; `None` = the observed range.
    pub range: Option<(f64, f64)>,
    /// Upper end of the tipping-Γ search.
    pub gamma_max: f64,
}

impl Default for BoundsConfig {
    fn default() -> Self {
        BoundsConfig {
            gammas: vec![1.0, 1.5, 2.0],
            range: None,
            gamma_max: 100.0,
        }
    }
}

impl BoundsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.gammas.is_empty() {
            return Err("at least one Γ is needed, e.g. --gamma 1,1.5,2".into());
        }
        if let Some(g) = self.gammas.iter().find(|g| !(g.is_finite() && **g >= 1.0)) {
            return Err(format!("Γ must be a finite number ≥ 1, got {g}"));
        }
        if !(self.gamma_max.is_finite() && self.gamma_max >= 1.0) {
            return Err(format!("Γ_max must be ≥ 1, got {}", self.gamma_max));
        }
        if let Some((lo, hi)) = self.range {
            if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                return Err(format!(
                    "payoff range must be LO,HI with LO ≤ HI, got {lo},{hi}"
                ));
            }
        }
        Ok(())
    }

    /// The Γ at which claims are certified: the largest configured one.
    pub fn certify_gamma(&self) -> f64 {
        self.gammas.iter().copied().fold(1.0, f64::max)
    }
}

/// Which rows a bound summarises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// All of the cell's matches.
    Pooled,
    /// One context stratum.
    Stratum,
    /// `Σ_s w_s · bound_s` over the strata.
    Stratified,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Manski,
    Msm,
    /// Range of a policy's regret against σ over the box.
    Regret,
    /// Range of σ's exploitability over the box.
    Exploitability,
    /// Total-variation omitted-variable certificate.
    Tv,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Manski => "manski",
            Method::Msm => "msm",
            Method::Regret => "regret",
            Method::Exploitability => "exploitability",
            Method::Tv => "tv",
        }
    }
}

/// One row of the `bounds` table (policies as matrix indices).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoundRow {
    pub policy_i: Option<usize>,
    pub policy_j: Option<usize>,
    pub stratum: Option<String>,
    pub scope: Scope,
    /// `None` for Manski (it assumes nothing about Γ).
    pub gamma: Option<f64>,
    pub method: Method,
    pub lo: f64,
    pub hi: f64,
    /// Observations behind the bound.
    pub n: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Claim {
    /// Adjacent leaderboard ranks: `above` has the larger payoff vs σ (MSM) or mean payoff
    /// standardised over the context (TV).
    RanksAbove { above: usize, below: usize },
    /// Adjacent ranks by Bradley–Terry rating: `above` has the larger rating.
    RatesAbove { above: usize, below: usize },
    /// The policy's regret against σ stays ≤ 0 (σ stays an equilibrium for it).
    NoProfitableDeviation { policy: usize },
}

/// One row of the `certificates` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Certificate {
    pub claim: Claim,
    pub method: Method,
    /// The naive quantity: u_above − u_below, the rating gap (Elo points), the mean-payoff
    /// contrast (TV), or the regret.
    pub naive: f64,
    /// `None`: robust beyond Γ_max (MSM), or not a Γ method (TV).
    pub tipping_gamma: Option<f64>,
    pub certified: bool,
    /// MSM ranks: the contrast's lower end at the certification Γ (payoff vs σ, or mean
    /// score in the round robin for ratings); regret: its upper end; TV: the bias bound.
    pub bound: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GameBounds {
    /// `[y_min, y_max]` in use.
    pub range: (f64, f64),
    pub certify_gamma: f64,
    /// Upper end of the tipping-Γ search.
    pub gamma_max: f64,
    pub has_context: bool,
    pub rows: Vec<BoundRow>,
    pub certificates: Vec<Certificate>,
}

/// A regret tolerance relative to the payoff range (solvers stop at ~1e-9 of it).
const REGRET_TOL: f64 = 1e-7;

struct Game<'a> {
    n: usize,
    cells: &'a [Option<&'a CellSummary>],
    range: (f64, f64),
    /// Observations per row.
    row_n: Vec<u64>,
}

impl Game<'_> {
    fn cell(&self, i: usize, j: usize) -> Option<&CellSummary> {
        self.cells[i * self.n + j]
    }

    fn vacuous(&self) -> Interval {
        Interval::new(self.range.0, self.range.1)
    }

    fn manski_pooled(&self, i: usize, j: usize) -> Interval {
        match self.cell(i, j) {
            Some(c) => self.manski_of(i, &c.pooled, self.range),
            None => self.vacuous(),
        }
    }

    /// Manski bound of whole-cell statistics `stats` of row i, on `range`.
    fn manski_of(&self, i: usize, stats: &StratumStats, range: (f64, f64)) -> Interval {
        manski(stats.mean, stats.n as f64 / self.row_n[i] as f64, range)
    }

    /// The box entry of whole-cell statistics at Γ: MSM where it exists, else Manski.
    fn box_of(&self, i: usize, stats: &StratumStats, range: (f64, f64), gamma: f64) -> Interval {
        match &stats.weighted {
            Some(w) => w.msm(gamma),
            None => self.manski_of(i, stats, range),
        }
    }

    /// The box entry of cell (i, j) at Γ.
    fn cell_box(&self, i: usize, j: usize, gamma: f64) -> Interval {
        match self.cell(i, j) {
            Some(c) => self.box_of(i, &c.pooled, self.range, gamma),
            None => self.vacuous(),
        }
    }

    /// The score box entry of cell (i, j) at Γ (scores lie in [0, 1]).
    fn score_box(&self, i: usize, j: usize, gamma: f64) -> Interval {
        match self.cell(i, j) {
            Some(c) => self.box_of(i, &c.score, (0.0, 1.0), gamma),
            None => Interval::new(0.0, 1.0),
        }
    }

    /// The box at Γ on the columns in `cols`: (lo, hi), each n × |cols| row-major.
    fn boxes(&self, cols: &[usize], gamma: f64) -> (Vec<f64>, Vec<f64>) {
        let mut lo = Vec::with_capacity(self.n * cols.len());
        let mut hi = Vec::with_capacity(self.n * cols.len());
        for i in 0..self.n {
            for &j in cols {
                let b = self.cell_box(i, j, gamma);
                lo.push(b.lo);
                hi.push(b.hi);
            }
        }
        (lo, hi)
    }
}

/// The range of each policy's regret `r_k = (Mσ)_k − σᵀMσ` over a box (σ fixed). r_k is
/// linear in M: M[k,j] has coefficient σ_j(1 − σ_k) ≥ 0, M[i,j] (i ≠ k) −σ_iσ_j ≤ 0, so
/// each end takes every cell at one of its ends.
fn regret_ranges(n: usize, w: &[f64], lo: &[f64], hi: &[f64], sigma: &[f64]) -> Vec<Interval> {
    let s = w.len();
    let row = |x: &[f64], i: usize| -> f64 { (0..s).map(|c| w[c] * x[i * s + c]).sum() };
    let (row_lo, row_hi): (Vec<f64>, Vec<f64>) = (0..n).map(|i| (row(lo, i), row(hi, i))).unzip();
    let value_lo: f64 = (0..n).map(|i| sigma[i] * row_lo[i]).sum();
    let value_hi: f64 = (0..n).map(|i| sigma[i] * row_hi[i]).sum();
    (0..n)
        .map(|k| {
            let own = 1.0 - sigma[k];
            Interval::new(
                own * row_lo[k] - (value_hi - sigma[k] * row_hi[k]),
                own * row_hi[k] - (value_lo - sigma[k] * row_lo[k]),
            )
        })
        .collect()
}

/// The smallest exploitability of σ over the box, by LP: min t s.t. t ≥ r_k(M) for every k,
/// M in the box (only the support columns matter). Solved on the range-normalised box.
fn min_exploitability(
    n: usize,
    cols: &[usize],
    sigma: &[f64],
    lo: &[f64],
    hi: &[f64],
    range: (f64, f64),
) -> Result<f64, KernelError> {
    let width = range.1 - range.0;
    if width <= 0.0 || cols.is_empty() {
        return Ok(0.0);
    }
    let s = cols.len();
    let norm = |x: f64| ((x - range.0) / width).clamp(0.0, 1.0);
    let mut vars = ProblemVariables::new();
    let x: Vec<_> = (0..n * s)
        .map(|c| {
            let (l, h) = (norm(lo[c]), norm(hi[c]));
            vars.add(variable().min(l).max(h.max(l)))
        })
        .collect();
    let t = vars.add(variable().min(0.0));
    let mut model = vars.minimise(t).using(microlp);
    // value = Σ_i Σ_c σ_i σ_{cols[c]} x[i,c]
    let value: Expression = (0..n)
        .filter(|&i| sigma[i] > 0.0)
        .flat_map(|i| (0..s).map(move |c| (i, c)))
        .map(|(i, c)| sigma[i] * sigma[cols[c]] * x[i * s + c])
        .sum();
    for k in 0..n {
        let u: Expression = (0..s).map(|c| sigma[cols[c]] * x[k * s + c]).sum();
        model = model.with((t - u + value.clone()).geq(0.0));
    }
    let sol = model.solve().map_err(lp_error)?;
    Ok(sol.value(t).max(0.0) * width)
}

/// The bounds and certificates of one game. `cells` is row-major n×n (`None` = no matches),
/// `payoff` the imputed payoff matrix that σ was solved on, `order` the leaderboard order,
/// `ratings` the Bradley–Terry ratings (`None` = unrated). The cells are owned or borrowed (the
/// streaming engine lends its summaries rather than copy them every epoch).
pub fn game_bounds<C: Borrow<CellSummary>>(
    n: usize,
    cells: &[Option<C>],
    payoff: &Matrix,
    sigma: &[f64],
    order: &[usize],
    ratings: &[Option<f64>],
    cfg: &BoundsConfig,
) -> Result<GameBounds, KernelError> {
    cfg.validate().map_err(KernelError::InvalidInput)?;
    let cells: Vec<Option<&CellSummary>> = cells
        .iter()
        .map(|c| c.as_ref().map(Borrow::borrow))
        .collect();
    let cells = &cells[..];
    if cells.len() != n * n
        || payoff.n() != n
        || sigma.len() != n
        || order.len() != n
        || ratings.len() != n
    {
        return Err(KernelError::InvalidInput(format!(
            "bounds of {n} policies need n² cells and n-vectors"
        )));
    }
    let observed = cells
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), c| {
            (l.min(c.min), h.max(c.max))
        });
    let range = match cfg.range {
        _ if observed.0 > observed.1 => {
            return Ok(GameBounds {
                range: cfg.range.unwrap_or((0.0, 0.0)),
                certify_gamma: cfg.certify_gamma(),
                gamma_max: cfg.gamma_max,
                has_context: false,
                rows: vec![],
                certificates: vec![],
            })
        }
        Some((lo, hi)) if observed.0 < lo || observed.1 > hi => {
            return Err(KernelError::InvalidInput(format!(
                "observed payoffs span [{}, {}], outside the declared payoff range [{lo}, {hi}]",
                observed.0, observed.1
            )))
        }
        Some(r) => r,
        None => observed,
    };
    let row_n = (0..n)
        .map(|i| {
            cells[i * n..(i + 1) * n]
                .iter()
                .flatten()
                .map(|c| c.pooled.n)
                .sum()
        })
        .collect();
    let game = Game {
        n,
        cells,
        range,
        row_n,
    };
    let mut strata: Vec<Option<String>> = cells
        .iter()
        .flatten()
        .flat_map(|c| c.strata.iter().map(|s| s.stratum.clone()))
        .collect();
    strata.sort();
    strata.dedup();
    let has_context = strata.iter().any(Option::is_some);
    // (count, payoff sum) of row i in stratum s.
    let row_strata: Vec<Vec<(f64, f64)>> = (0..n)
        .map(|i| {
            strata
                .iter()
                .map(|s| {
                    (0..n)
                        .filter_map(|j| game.cell(i, j)?.stratum(s))
                        .fold((0.0, 0.0), |(k, sum), st| {
                            (k + st.n as f64, sum + st.n as f64 * st.mean)
                        })
                })
                .collect()
        })
        .collect();

    let mut rows = Vec::new();
    for (i, rs) in row_strata.iter().enumerate() {
        for j in 0..n {
            cell_rows(&game, i, j, cfg, &strata, rs, &mut rows);
        }
    }

    let cols: Vec<usize> = (0..n).filter(|&j| sigma[j] > 0.0).collect();
    let w: Vec<f64> = cols.iter().map(|&j| sigma[j]).collect();
    let total: u64 = game.row_n.iter().sum();
    // Every policy's tipping search probes Γ = 1 and Γ_max first, and bisections often share
    // probes: memoise the regret ranges by Γ.
    let memo = std::cell::RefCell::new(std::collections::HashMap::<u64, Vec<Interval>>::new());
    let regrets_at = |gamma: f64| -> Vec<Interval> {
        if let Some(r) = memo.borrow().get(&gamma.to_bits()) {
            return r.clone();
        }
        let (lo, hi) = game.boxes(&cols, gamma);
        let r = regret_ranges(n, &w, &lo, &hi, sigma);
        memo.borrow_mut().insert(gamma.to_bits(), r.clone());
        r
    };
    for &gamma in &cfg.gammas {
        let (lo, hi) = game.boxes(&cols, gamma);
        let regrets = regret_ranges(n, &w, &lo, &hi, sigma);
        for (k, r) in regrets.iter().enumerate() {
            rows.push(BoundRow {
                policy_i: Some(k),
                policy_j: None,
                stratum: None,
                scope: Scope::Pooled,
                gamma: Some(gamma),
                method: Method::Regret,
                lo: r.lo,
                hi: r.hi,
                n: game.row_n[k],
            });
        }
        let worst = regrets.iter().map(|r| r.hi).fold(0.0, f64::max);
        rows.push(BoundRow {
            policy_i: None,
            policy_j: None,
            stratum: None,
            scope: Scope::Pooled,
            gamma: Some(gamma),
            method: Method::Exploitability,
            lo: min_exploitability(n, &cols, sigma, &lo, &hi, range)?.min(worst),
            hi: worst,
            n: total,
        });
    }

    let certify = cfg.certify_gamma();
    let u = payoff.mul_vec(sigma);
    let value: f64 = sigma.iter().zip(&u).map(|(s, x)| s * x).sum();
    let mut certificates = Vec::new();
    // Payoffs this close are the leaderboard's tie (σ's support members earn the same payoff
    // in exact arithmetic): such a claim fails at Γ = 1, whatever the rounding's sign.
    let rank_tie = crate::analysis::RANK_TIE * payoff.range();
    for pair in order.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let band = |gamma: f64| {
            cols.iter().fold(Interval::point(0.0), |acc, &j| {
                let c = contrast(game.cell_box(a, j, gamma), game.cell_box(b, j, gamma));
                Interval::new(acc.lo + sigma[j] * c.lo, acc.hi + sigma[j] * c.hi)
            })
        };
        certificates.push(rank_certificate(
            Claim::RanksAbove { above: a, below: b },
            u[a] - u[b],
            rank_tie,
            band,
            cfg,
        ));
        if has_context {
            let arm = |k: usize| Arm {
                strata: row_strata[k]
                    .iter()
                    .map(|&(cnt, sum)| (cnt, if cnt > 0.0 { sum / cnt } else { 0.0 }))
                    .collect(),
            };
            if let Some(tv) = tv_certificate(&arm(a), &arm(b), range) {
                certificates.push(Certificate {
                    claim: Claim::RanksAbove { above: a, below: b },
                    method: Method::Tv,
                    naive: tv.naive,
                    tipping_gamma: None,
                    certified: tv.certified && tv.naive > 0.0,
                    bound: tv.bias_bound,
                });
            }
        }
    }
    certificates.extend(rating_certificates(&game, ratings, cfg));
    let tol = REGRET_TOL * (range.1 - range.0);
    for (k, uk) in u.iter().enumerate() {
        let band = |gamma: f64| {
            let r = regrets_at(gamma)[k];
            Interval::new(r.lo - tol, r.hi - tol)
        };
        let tipping = tipping_gamma(band, false, cfg.gamma_max);
        certificates.push(Certificate {
            claim: Claim::NoProfitableDeviation { policy: k },
            method: Method::Msm,
            naive: uk - value,
            tipping_gamma: tipping.gamma(),
            certified: tipping.robust_at(certify),
            bound: regrets_at(certify)[k].hi,
        });
    }
    Ok(GameBounds {
        range,
        certify_gamma: certify,
        gamma_max: cfg.gamma_max,
        has_context,
        rows,
        certificates,
    })
}

/// The MSM certificate of a rank claim whose naive contrast is `naive` and whose contrast
/// band over the box at Γ is `band` (positive = the claim holds); a `naive` at or below `tie`
/// already fails at Γ = 1.
fn rank_certificate(
    claim: Claim,
    naive: f64,
    tie: f64,
    band: impl Fn(f64) -> Interval,
    cfg: &BoundsConfig,
) -> Certificate {
    let holds = naive > tie;
    let tipping = if holds {
        tipping_gamma(&band, true, cfg.gamma_max)
    } else {
        Tipping::At(1.0)
    };
    Certificate {
        claim,
        method: Method::Msm,
        naive,
        tipping_gamma: tipping.gamma(),
        certified: holds && tipping.robust_at(cfg.certify_gamma()),
        bound: band(cfg.certify_gamma()).lo,
    }
}

/// "a rates above b" for adjacent policies in Bradley–Terry order (`ratings`, `None` =
/// unrated). In a round robin where every rated pair meets equally often, the likelihood
/// equations read `Σ_k σ(r_a − r_k) = Σ_k S_ak`, whose left side grows with r_a term by
/// term; so r_a > r_b exactly when a's mean score against the others exceeds b's. The band
/// bounds that score contrast over the score box at Γ.
fn rating_certificates(
    game: &Game,
    ratings: &[Option<f64>],
    cfg: &BoundsConfig,
) -> Vec<Certificate> {
    let mut by_rating: Vec<(usize, f64)> =
        (0..game.n).filter_map(|k| Some((k, ratings[k]?))).collect();
    by_rating.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
    let rated: Vec<usize> = by_rating.iter().map(|r| r.0).collect();
    let others = (rated.len().max(2) - 1) as f64;
    by_rating
        .windows(2)
        .map(|pair| {
            let ((a, ra), (b, rb)) = (pair[0], pair[1]);
            let band = |gamma: f64| {
                let head = contrast(game.score_box(a, b, gamma), game.score_box(b, a, gamma));
                let sum = rated
                    .iter()
                    .filter(|&&k| k != a && k != b)
                    .fold(head, |acc, &k| {
                        let c = contrast(game.score_box(a, k, gamma), game.score_box(b, k, gamma));
                        Interval::new(acc.lo + c.lo, acc.hi + c.hi)
                    });
                Interval::new(sum.lo / others, sum.hi / others)
            };
            rank_certificate(
                Claim::RatesAbove { above: a, below: b },
                ra - rb,
                0.0,
                band,
                cfg,
            )
        })
        .collect()
}

/// The `bounds` rows of cell (i, j): Manski (pooled, per stratum, stratified) and, where
/// propensities exist, MSM at every configured Γ (same scopes).
fn cell_rows(
    game: &Game,
    i: usize,
    j: usize,
    cfg: &BoundsConfig,
    strata: &[Option<String>],
    row_strata: &[(f64, f64)],
    rows: &mut Vec<BoundRow>,
) {
    let row = |stratum: Option<String>, scope, gamma, method, b: Interval, n| BoundRow {
        policy_i: Some(i),
        policy_j: Some(j),
        stratum,
        scope,
        gamma,
        method,
        lo: b.lo,
        hi: b.hi,
        n,
    };
    let Some(c) = game.cell(i, j) else {
        // i never met j: vacuous, and reported as such (n = 0).
        rows.push(row(
            None,
            Scope::Pooled,
            None,
            Method::Manski,
            game.vacuous(),
            0,
        ));
        return;
    };
    let n = c.pooled.n;
    rows.push(row(
        None,
        Scope::Pooled,
        None,
        Method::Manski,
        game.manski_pooled(i, j),
        n,
    ));
    // Stratum s of row i: (weight w_s, Manski bound, stats of the cell there).
    let row_total: f64 = row_strata.iter().map(|s| s.0).sum();
    let parts: Vec<_> = strata
        .iter()
        .zip(row_strata)
        .filter(|(_, rs)| rs.0 > 0.0)
        .map(|(s, rs)| {
            let st = c.stratum(s);
            let b = match st {
                Some(st) => manski(st.mean, st.n as f64 / rs.0, game.range),
                None => game.vacuous(),
            };
            (s, rs.0 / row_total, b, st)
        })
        .collect();
    if strata.iter().any(Option::is_some) {
        for (s, _, b, st) in &parts {
            rows.push(row(
                (*s).clone(),
                Scope::Stratum,
                None,
                Method::Manski,
                *b,
                st.map_or(0, |x| x.n),
            ));
        }
        let combo: Vec<_> = parts.iter().map(|(_, w, b, _)| (*w, *b)).collect();
        rows.push(row(
            None,
            Scope::Stratified,
            None,
            Method::Manski,
            stratified(&combo).clamp_into(game.manski_pooled(i, j)),
            n,
        ));
    }
    for &gamma in &cfg.gammas {
        if let Some(w) = &c.pooled.weighted {
            let b = w.msm(gamma);
            rows.push(row(None, Scope::Pooled, Some(gamma), Method::Msm, b, n));
        }
        if !strata.iter().any(Option::is_some) {
            continue;
        }
        let mut any = false;
        let mut combo = Vec::new();
        for (s, weight, manski_b, st) in &parts {
            let msm_b = st.and_then(|x| x.weighted.as_ref()).map(|w| w.msm(gamma));
            if let Some(b) = msm_b {
                any = true;
                let k = st.map_or(0, |x| x.n);
                rows.push(row(
                    (*s).clone(),
                    Scope::Stratum,
                    Some(gamma),
                    Method::Msm,
                    b,
                    k,
                ));
            }
            combo.push((*weight, msm_b.unwrap_or(*manski_b)));
        }
        if any {
            rows.push(row(
                None,
                Scope::Stratified,
                Some(gamma),
                Method::Msm,
                stratified(&combo).clamp_into(game.cell_box(i, j, gamma)),
                n,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A contrast at or below the tie fails at Γ = 1 whatever its band says, so that the
    /// sign of rounding between two support members (equal payoffs against σ in exact
    /// arithmetic) cannot decide the certificate.
    #[test]
    fn a_tied_rank_claim_tips_at_one() {
        let cfg = BoundsConfig::default();
        let claim = Claim::RanksAbove { above: 0, below: 1 };
        // The band stays positive up to Γ = 3.
        let band = |g: f64| Interval::new(0.3 - 0.1 * g, 0.3 + 0.1 * g);
        let tied = rank_certificate(claim.clone(), 1e-17, 1e-9, band, &cfg);
        assert_eq!((tied.tipping_gamma, tied.certified), (Some(1.0), false));
        let clear = rank_certificate(claim, 1e-3, 1e-9, band, &cfg);
        let t = clear.tipping_gamma.unwrap();
        assert!((t / 3.0 - 1.0).abs() < 2e-6, "{t}");
        assert!(clear.certified, "holds up to Γ = 2, the largest reported");
    }
}
