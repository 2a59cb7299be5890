//! nashflow kernels: pure numerics on dense meta-game matrices (DESIGN §3, §5).
//!
//! Conventions used throughout: the meta-game is symmetric two-player with payoff matrix `M`
//! (`M[i,j]` = mean payoff to i against j); mixtures live on the simplex; every tolerance is
//! relative to the payoff range (solvers work on the range-normalised matrix).

pub mod analysis;
pub mod attribution;
pub mod bootstrap;
pub mod bounds;
pub mod lifts;
pub mod lstsq;
pub mod matrix;
pub mod maxent;
pub mod metrics;
pub mod parallel;
pub mod polytope;
pub mod progress;
pub mod ratings;
pub mod rng;
pub mod sim;
pub mod solvers;
pub mod stats;

pub use matrix::Matrix;
pub use solvers::{SolverConfig, SolverKind};

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum KernelError {
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("the constraint system is infeasible")]
    Infeasible,
    #[error("numerical failure: {0}")]
    Numerical(String),
}
