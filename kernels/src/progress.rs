//! Progress reporting for long kernels (bootstrap, Level 3). Kernels do no I/O: the caller
//! decides whether this becomes a terminal progress bar or nothing.

pub trait Progress {
    fn start(&mut self, label: &str, total: u64);
    fn inc(&mut self, delta: u64);
    fn finish(&mut self);
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {
    fn start(&mut self, _: &str, _: u64) {}
    fn inc(&mut self, _: u64) {}
    fn finish(&mut self) {}
}
