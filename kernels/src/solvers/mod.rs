//! Meta-solvers: each maps a payoff matrix to a mixture σ on the simplex.

mod alpharank;
mod cce;
mod leave_one_out;
mod lle;
mod mene;
mod nash_lp;
mod node_lp;
mod prd;
mod tableau;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use alpharank::{alpharank, log_fixation};
pub use cce::cce;
pub use leave_one_out::LeaveOneOut;
pub use lle::{lle, Lle};
pub use mene::{
    brute_force_max_entropy, equilibrium_polytope, mene, mene_budgeted, mene_hinted, support_of,
    MeneOutcome, CONSTANT_SUM_TOL, DEFAULT_NODE_LIMIT,
};
pub use nash_lp::nash_lp;
pub use prd::prd;

use crate::matrix::Matrix;
use crate::KernelError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SolverKind {
    Mene,
    NashLp,
    Uniform,
    Prd,
    Alpharank,
    Cce,
    Lle,
}

impl SolverKind {
    /// What an inexact σ (`Solved::exact` false) means for this solver, for the notes below
    /// a table.
    pub fn inexact_reason(self) -> &'static str {
        match self {
            SolverKind::Lle => {
                "lle's continuation stalled before λ_max (--lle-lambda): σ is the last logit QRE \
                 reached on the principal branch"
            }
            _ => {
                "the mene search budget ran out (--mene-node-limit): σ is the highest-entropy \
                 equilibrium found, not proven the maximum"
            }
        }
    }

    pub const ALL: [SolverKind; 7] = [
        SolverKind::Mene,
        SolverKind::NashLp,
        SolverKind::Uniform,
        SolverKind::Prd,
        SolverKind::Alpharank,
        SolverKind::Cce,
        SolverKind::Lle,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SolverKind::Mene => "mene",
            SolverKind::NashLp => "nash-lp",
            SolverKind::Uniform => "uniform",
            SolverKind::Prd => "prd",
            SolverKind::Alpharank => "alpharank",
            SolverKind::Cce => "cce",
            SolverKind::Lle => "lle",
        }
    }
}

impl fmt::Display for SolverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SolverKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        SolverKind::ALL
            .into_iter()
            .find(|k| k.name() == s || (s == "replicator" && *k == SolverKind::Prd))
            .ok_or_else(|| {
                let names: Vec<_> = SolverKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown solver `{s}`; expected one of {}", names.join(", "))
            })
    }
}

/// A solver and its parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SolverConfig {
    pub kind: SolverKind,
    /// α-Rank population size m.
    pub alpharank_m: f64,
    /// α-Rank ranking intensity α.
    pub alpharank_alpha: f64,
    pub prd_iterations: usize,
    pub prd_dt: f64,
    pub prd_gamma: f64,
    /// Final logit precision for `lle`, on the range-normalised matrix.
    pub lle_lambda: f64,
    /// Search budget of general-sum `mene` (nodes).
    pub mene_node_limit: usize,
}

/// σ and whether the solver's own guarantee holds: general-sum `mene` falls short when its
/// search budget runs out, `lle` when its continuation cannot reach λ_max.
#[derive(Clone, Debug, PartialEq)]
pub struct Solved {
    pub sigma: Vec<f64>,
    pub exact: bool,
}

/// Equilibrium supports from an earlier solve of a similar game (the previous epoch's),
/// tried before solving from scratch. Only `mene` on constant-sum games uses them, and it
/// verifies them: a stale or wrong hint costs time, never a different answer.
#[derive(Clone, Debug, Default)]
pub struct WarmStart {
    /// σ's support.
    pub sigma: Option<Vec<usize>>,
    /// Per bootstrap replicate: the support of its σ.
    pub replicates: Vec<Option<Vec<usize>>>,
    /// Per Level 2 candidate c: the leave-one-out σ's support without c.
    pub subgames: SubgameHints,
}

/// Per Level 2 candidate c: the support of the leave-one-out σ without c (in that subgame's
/// indices), and whether that support was the one hinted before it (then the next solve
/// checks the hint first; otherwise it starts from σ's tableau, which is cheaper when the
/// support moves, as it does almost every epoch in a league of noise).
#[derive(Clone, Debug, Default)]
pub struct SubgameHints {
    pub supports: Vec<Option<Vec<usize>>>,
    pub held: Vec<bool>,
}

impl SubgameHints {
    /// Candidate `c`'s hint, and whether it held last time.
    pub(crate) fn at(&self, c: usize) -> (Option<&[usize]>, bool) {
        (
            hint_at(&self.supports, c),
            self.held.get(c).copied().unwrap_or(false),
        )
    }

    /// Remembers each subgame σ's support, and whether it is the one hinted.
    pub(crate) fn remember<'a>(&mut self, sigmas: impl IntoIterator<Item = &'a [f64]>) {
        let previous = std::mem::take(&mut self.supports);
        remember(&mut self.supports, sigmas);
        self.held = (0..self.supports.len())
            .map(|c| {
                hint_at(&previous, c).is_some()
                    && hint_at(&previous, c) == hint_at(&self.supports, c)
            })
            .collect();
    }
}

/// The hint in slot `k` of `hints`, if any.
pub(crate) fn hint_at(hints: &[Option<Vec<usize>>], k: usize) -> Option<&[usize]> {
    hints.get(k).and_then(|h| h.as_deref())
}

/// Remembers each σ's support in `hints` for the next solve.
pub(crate) fn remember<'a>(
    hints: &mut Vec<Option<Vec<usize>>>,
    sigmas: impl IntoIterator<Item = &'a [f64]>,
) {
    hints.clear();
    hints.extend(sigmas.into_iter().map(|s| Some(support_of(s))));
}

impl Default for SolverConfig {
    fn default() -> Self {
        SolverConfig {
            kind: SolverKind::Mene,
            alpharank_m: 50.0,
            alpharank_alpha: 100.0,
            prd_iterations: 100_000,
            prd_dt: 1e-3,
            prd_gamma: 1e-6,
            lle_lambda: 1e3,
            mene_node_limit: DEFAULT_NODE_LIMIT,
        }
    }
}

impl SolverConfig {
    pub fn new(kind: SolverKind) -> Self {
        SolverConfig {
            kind,
            ..Default::default()
        }
    }

    /// Solves the symmetric meta-game `m`; the result is on the simplex.
    pub fn solve(&self, m: &Matrix) -> Result<Vec<f64>, KernelError> {
        Ok(self.solve_detailed(m)?.sigma)
    }

    /// As [`SolverConfig::solve`], also telling whether `mene` proved maximality.
    pub fn solve_detailed(&self, m: &Matrix) -> Result<Solved, KernelError> {
        self.solve_hinted(m, None)
    }

    /// As [`SolverConfig::solve_detailed`], trying the support `hint` first (`mene` only;
    /// the result does not depend on it, see [`mene_hinted`]).
    pub fn solve_hinted(&self, m: &Matrix, hint: Option<&[usize]>) -> Result<Solved, KernelError> {
        if m.n() == 0 {
            return Err(KernelError::InvalidInput("the game has no policies".into()));
        }
        // Solvers work on the range-normalised matrix: its range must be a number.
        if !m.range().is_finite() {
            return Err(KernelError::InvalidInput(format!(
                "the payoffs span more than a double can hold ({:?})",
                m.min_max()
            )));
        }
        if self.kind == SolverKind::Mene {
            let o = mene_hinted(m, self.mene_node_limit, hint)?;
            return Ok(Solved {
                sigma: o.sigma,
                exact: o.exact,
            });
        }
        let n = m.n();
        if self.kind == SolverKind::Lle {
            let o = lle(m, self.lle_lambda);
            return Ok(Solved {
                sigma: o.sigma,
                exact: o.reached,
            });
        }
        let sigma = match self.kind {
            SolverKind::NashLp => nash_lp(m)?,
            SolverKind::Uniform => vec![1.0 / n as f64; n],
            SolverKind::Prd => prd(m, self.prd_iterations, self.prd_dt, self.prd_gamma),
            SolverKind::Alpharank => alpharank(m, self.alpharank_m, self.alpharank_alpha),
            SolverKind::Cce => cce(m),
            SolverKind::Mene | SolverKind::Lle => unreachable!("handled above"),
        };
        Ok(Solved { sigma, exact: true })
    }
}

#[cfg(test)]
mod tests {
    use super::SubgameHints;

    /// A subgame's hint counts as held only when the support it led to is the hinted one.
    #[test]
    fn subgame_hints_record_whether_each_support_held() {
        let mut hints = SubgameHints::default();
        hints.remember([&[0.5, 0.5, 0.0][..], &[1.0, 0.0]]);
        assert_eq!(
            hints.at(0),
            (Some(&[0, 1][..]), false),
            "nothing hinted yet"
        );
        hints.remember([&[0.4, 0.6, 0.0][..], &[0.2, 0.8]]);
        assert_eq!(hints.at(0), (Some(&[0, 1][..]), true));
        assert_eq!(hints.at(1), (Some(&[0, 1][..]), false), "the support grew");
        hints.remember([&[0.4, 0.6, 0.0][..]]);
        assert_eq!(hints.at(1), (None, false), "the candidate is gone");
    }
}
