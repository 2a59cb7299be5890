//! Batched match simulators (DESIGN §8, issue #4): the bargaining game and the battle game,
//! their parametric policy families, and a counter-based RNG keyed by (seed, match index) so
//! any match can be replayed alone and a device implementation can reproduce it bit for bit.

pub mod bargain;
pub mod battle;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod matchmaking;
pub mod oracle;
pub mod philox;
pub mod run;

pub use matchmaking::{Matchmaker, Pairing, Schedule};
pub use run::{simulate, Game, PairStats, SimConfig, SimMatch, Simulation};
