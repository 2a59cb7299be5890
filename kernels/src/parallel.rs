//! Independent solves (leave-one-out games, bootstrap replicates) spread over the machine's
//! cores on one long-lived thread pool. Results come back in input order, so no output
//! depends on the thread count. `NASHFLOW_KERNEL_THREADS=1` keeps a kernel on one core (the
//! benchmarks' per-core figures).
//!
//! The pool outlives every call on purpose: the streaming engine runs these solves every
//! epoch, and threads started per call cost more than the epoch's solves themselves (thread
//! start-up, fresh stacks, and allocator heaps abandoned and reclaimed every time).

use std::sync::OnceLock;

use rayon::prelude::*;

/// Games smaller than this are solved inline: handing work to the pool costs more than their
/// solves.
pub const MIN_PARALLEL_N: usize = 8;

/// Threads a kernel may use.
pub fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        std::env::var("NASHFLOW_KERNEL_THREADS")
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|&t| t >= 1)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}

/// The kernels' pool of [`threads`] threads, started on first use.
fn pool() -> &'static rayon::ThreadPool {
    static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads())
            .thread_name(|k| format!("nashflow-kernel-{k}"))
            .build()
            .expect("the kernels' thread pool starts")
    })
}

/// `items.map(f)` in order, on up to [`threads`] threads when `parallel`.
pub fn map<T: Sync, R: Send>(items: &[T], parallel: bool, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if !parallel || threads() <= 1 || items.len() <= 1 {
        return items.iter().map(f).collect();
    }
    let f = &f;
    pool().install(|| items.par_iter().map(f).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn map_keeps_order() {
        let items: Vec<u64> = (0..1000).collect();
        let out = super::map(&items, true, |x| x * x);
        assert_eq!(out, items.iter().map(|x| x * x).collect::<Vec<_>>());
        assert!(super::map(&[] as &[u64], true, |x| *x).is_empty());
        // Nested calls (a bootstrap replicate's own parallel solves) run on the same pool.
        let nested = super::map(&items[..8], true, |&x| {
            super::map(&items[..8], true, |&y| x * y)
        });
        assert_eq!(nested[3][5], 15);
    }
}
