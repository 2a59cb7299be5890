//! nashflow pipelines: the `nashflow` command-line tool. Wiring only: reading inputs, calling
//! the kernels, rendering tables, JSON and Parquet.

pub mod analyze;
pub mod causal;
pub mod cli;
pub mod config;
pub mod demo;
pub mod file_source;
pub mod interrupt;
pub mod kafka;
pub mod progress;
pub mod report;
pub mod run;
pub mod serve;
pub mod sim_source;
pub mod simulate;
pub mod solve;
pub mod sql;
pub mod tables;
