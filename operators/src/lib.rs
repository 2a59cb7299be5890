//! nashflow operators. This crate will hold the differential-dataflow operators; today it holds
//! the mapping from match records to cell contributions ([`observe`]) and the batch grouping
//! of a match log into per-game inputs for the kernels ([`batch`]), which the incremental
//! engine must reproduce.

pub mod batch;
pub mod engine;
pub mod observe;
pub mod trigger;
