//! Causal bounds on matchup payoffs when matchmaking was not random (DESIGN §6).
//!
//! A cell mean is E[payoff_i | i met j]; the target is E[payoff_i | do(i meets j)]. The
//! modules go from one sample to the whole game:
//!
//! * [`interval`]: the pure bounds — Manski natural bounds, marginal-sensitivity (Tan) bounds
//!   by the threshold rule, contrasts, stratified combinations, the tipping Γ, and the
//!   total-variation omitted-variable bias bound;
//! * [`summary`]: a cell's sufficient statistics (per context stratum: count, mean, and the
//!   sorted (payoff, propensity) multiset the MSM extreme needs), shared by `analyze` and the
//!   streaming engine so both give the same numbers;
//! * [`game`]: the `bounds` and `certificates` of one game — cell bounds per Γ, the interval
//!   payoff matrix, tipping Γ of adjacent leaderboard ranks, the robust-equilibrium check and
//!   the exploitability range over the box (by LP).

pub mod game;
pub mod interval;
pub mod summary;

pub use game::{game_bounds, BoundRow, BoundsConfig, Certificate, GameBounds};
pub use interval::Interval;
pub use summary::{BoundSample, CellSummary};
