//! The whole analysis of one game from its cells (and, for the bootstrap, its matches):
//! the single entry point that `analyze` and the streaming engine share.

use serde::{Deserialize, Serialize};

use crate::attribution::{attribution, Attribution, AttributionConfig};
use crate::bootstrap::{bootstrap, BootstrapConfig, BootstrapResult, Unit};
use crate::bounds::{game_bounds, BoundsConfig, CellSummary, GameBounds};
use crate::lifts::{lifts_hinted, Lifts};
use crate::metrics::{evaluate, support_size, welfare, Evaluation, Welfare};
use crate::progress::Progress;
use crate::ratings::{bradley_terry, nash_averaging, BradleyTerry};
use crate::solvers::{support_of, SolverConfig, SolverKind, WarmStart};
use crate::stats::{CellStats, GameMatrices, Missing};
use crate::KernelError;

#[derive(Clone, Debug)]
pub struct AnalysisConfig {
    pub solver: SolverConfig,
    pub missing: Missing,
    /// Bootstrap replicates; 0 turns the bootstrap off.
    pub bootstrap: usize,
    pub seed: u64,
    pub ci_level: f64,
    /// Level 1/2 (partner and ecosystem lifts, keystones: the leave-one-out solves) on/off.
    /// Off leaves `GameAnalysis::lifts` empty; only the streaming engine's cadence turns it
    /// off, and it fills them in from the game's last recomputation.
    pub lifts: bool,
    /// Level 3 on/off.
    pub level3: bool,
    pub exact_max: usize,
    pub mc_samples: usize,
    /// Causal bounds and certificates (DESIGN §6); `None` = off.
    pub bounds: Option<BoundsConfig>,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        AnalysisConfig {
            solver: SolverConfig::default(),
            missing: Missing::ColumnMean,
            bootstrap: 0,
            seed: 0,
            ci_level: 0.95,
            lifts: true,
            level3: true,
            exact_max: 16,
            mc_samples: 200,
            bounds: None,
        }
    }
}

/// Relative to the payoff range: a best response's payoff against σ below the best by at most
/// this much is rounding (see [`GameAnalysis::ranking`]).
pub const RANK_TIE: f64 = 1e-9;

/// Per-policy quantities against σ: `X_k = Σ_j σ_j X[k,j]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VsSigma {
    pub uw: Vec<f64>,
    pub nw: Vec<f64>,
    pub nw_plus: Vec<f64>,
    pub ef1: Vec<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GameAnalysis {
    pub matrices: GameMatrices,
    pub sigma: Vec<f64>,
    /// False when `mene` ran out of search budget (σ is then the best equilibrium found) or
    /// `lle`'s continuation stalled before λ_max (σ is then the last QRE traced).
    pub solver_exact: bool,
    pub solve_seconds: f64,
    pub eval: Evaluation,
    pub welfare: Welfare,
    pub entropy: f64,
    pub support_size: usize,
    pub vs_sigma: VsSigma,
    /// Matches played by each policy (self-play counted once).
    pub games: Vec<f64>,
    /// Share of games against others won (draws as halves); `None` with no such games.
    pub win_rate: Vec<Option<f64>>,
    pub lifts: Lifts,
    pub attribution: Option<Attribution>,
    pub bootstrap: Option<BootstrapResult>,
    pub bradley_terry: BradleyTerry,
    pub nash_avg: Vec<f64>,
    /// Set by [`add_bounds`] when bounds are on.
    pub bounds: Option<GameBounds>,
}

impl GameAnalysis {
    /// Leaderboard order: payoff against σ (equivalently regret), then Nash mass, then name.
    /// Payoffs within [`RANK_TIE`] of the range below the best count as the best: every
    /// policy in σ's support earns exactly the best payoff in exact arithmetic, so their order
    /// is by mass, not by rounding.
    pub fn ranking(&self, policies: &[String]) -> Vec<usize> {
        let u = &self.eval.payoff_vs_sigma;
        let best = u.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let tie = RANK_TIE * self.matrices.payoff.range();
        let key = |k: usize| if best - u[k] <= tie { best } else { u[k] };
        let mut order: Vec<usize> = (0..policies.len()).collect();
        order.sort_by(|&x, &y| {
            key(y)
                .total_cmp(&key(x))
                .then(self.sigma[y].total_cmp(&self.sigma[x]))
                .then(policies[x].cmp(&policies[y]))
        });
        order
    }
}

/// Computes the causal bounds of an analysed game from its cells' bound summaries (row-major,
/// `None` = no matches), against its σ, leaderboard order and Bradley–Terry ratings.
pub fn add_bounds<C: std::borrow::Borrow<CellSummary>>(
    analysis: &mut GameAnalysis,
    policies: &[String],
    cells: &[Option<C>],
    cfg: &BoundsConfig,
) -> Result<(), KernelError> {
    let order = analysis.ranking(policies);
    let ratings: Vec<Option<f64>> = analysis
        .bradley_terry
        .ratings
        .iter()
        .map(|r| r.map(|r| r.rating))
        .collect();
    analysis.bounds = Some(game_bounds(
        policies.len(),
        cells,
        &analysis.matrices.payoff,
        &analysis.sigma,
        &order,
        &ratings,
        cfg,
    )?);
    Ok(())
}

/// Analyses one game. `cells` is row-major n×n; `units` feed the bootstrap only.
pub fn analyze_game(
    n: usize,
    cells: &[CellStats],
    units: &[Unit],
    cfg: &AnalysisConfig,
    progress: &mut dyn Progress,
) -> Result<GameAnalysis, KernelError> {
    analyze_game_warm(n, cells, units, cfg, progress, &mut WarmStart::default())
}

/// [`analyze_game`], trying the equilibrium supports in `warm` first (σ's and the Level 2
/// subgames'; the streaming engine keeps them from the game's previous epoch) and leaving the
/// new ones there. The analysis is bit for bit the same with any `warm`; only its cost moves.
pub fn analyze_game_warm(
    n: usize,
    cells: &[CellStats],
    units: &[Unit],
    cfg: &AnalysisConfig,
    progress: &mut dyn Progress,
    warm: &mut WarmStart,
) -> Result<GameAnalysis, KernelError> {
    let g = GameMatrices::from_cells(n, cells, cfg.missing)?;
    let t0 = std::time::Instant::now();
    let solved = cfg.solver.solve_hinted(&g.payoff, warm.sigma.as_deref())?;
    let sigma = solved.sigma;
    warm.sigma = Some(support_of(&sigma));
    let solve_seconds = t0.elapsed().as_secs_f64();
    let eval = evaluate(&g.payoff, &sigma);
    let w = welfare(&g, &sigma);
    let vs_sigma = VsSigma {
        uw: g.payoff.plus_transpose().mul_vec(&sigma),
        nw: g.nw.mul_vec(&sigma),
        nw_plus: g.nw_plus.mul_vec(&sigma),
        ef1: g.ef1.mul_vec(&sigma),
    };
    let games = (0..n)
        .map(|k| {
            (0..n)
                .map(|j| {
                    let c = g.counts[(k, j)];
                    if j == k {
                        c / 2.0
                    } else {
                        c
                    }
                })
                .sum()
        })
        .collect();
    let win_rate = (0..n)
        .map(|k| {
            let won: f64 = (0..n).filter(|&j| j != k).map(|j| g.score[(k, j)]).sum();
            let lost: f64 = (0..n).filter(|&j| j != k).map(|j| g.score[(j, k)]).sum();
            (won + lost > 0.0).then(|| won / (won + lost))
        })
        .collect();
    let lifts = if cfg.lifts {
        lifts_hinted(&g, &sigma, &cfg.solver, &mut warm.subgames, progress)?
    } else {
        Lifts {
            level1: Vec::new(),
            level2: Vec::new(),
        }
    };
    let attribution = if cfg.level3 && n > 0 {
        Some(attribution(
            &g,
            &cfg.solver,
            &AttributionConfig {
                exact_max: cfg.exact_max,
                samples: cfg.mc_samples,
                seed: cfg.seed,
            },
            progress,
        )?)
    } else {
        None
    };
    let bootstrap = if cfg.bootstrap > 0 {
        Some(bootstrap(
            n,
            units,
            cfg.missing,
            &cfg.solver,
            &BootstrapConfig {
                replicates: cfg.bootstrap,
                seed: cfg.seed,
                level: cfg.ci_level,
            },
            progress,
            warm.sigma.as_deref(),
        )?)
    } else {
        None
    };
    Ok(GameAnalysis {
        entropy: crate::matrix::entropy(&sigma),
        support_size: support_size(&sigma),
        bradley_terry: bradley_terry(&g.score)?,
        nash_avg: nash_averaging(
            &g.payoff,
            (cfg.solver.kind == SolverKind::Mene).then_some(sigma.as_slice()),
        )?,
        matrices: g,
        sigma,
        solver_exact: solved.exact,
        solve_seconds,
        eval,
        welfare: w,
        vs_sigma,
        games,
        win_rate,
        lifts,
        attribution,
        bootstrap,
        bounds: None,
    })
}
