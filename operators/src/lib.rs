//! nashflow operators: the incremental engine on timely + differential-dataflow ([`engine`]),
//! the PSRO trigger ([`trigger`]), the mapping from match records to cell contributions
//! ([`observe`]), and the batch grouping of a match log into per-game kernel inputs
//! ([`batch`]) that the engine must reproduce.

pub mod batch;
pub mod cpu;
pub mod diffs;
pub mod elo;
pub mod engine;
pub mod observe;
pub mod shard;
pub mod table;
pub mod trigger;
