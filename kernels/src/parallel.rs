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

/// The same for constant-sum leave-one-out games derived from σ's LP (microseconds each).
pub const MIN_PARALLEL_LOO_N: usize = 64;

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

/// [`map`], reporting each finished item to `progress` (as `label`). The items run on the
/// pool (or on one helper thread) while the calling thread, which owns `progress`, only
/// forwards the count: a slow kernel shows its progress without giving up any parallelism.
pub fn map_with_progress<T: Sync, R: Send>(
    items: &[T],
    parallel: bool,
    progress: &mut dyn crate::progress::Progress,
    label: &str,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let poll = std::time::Duration::from_millis(100);
    map_polling(items, parallel, progress, label, poll, f)
}

/// [`map_with_progress`], forwarding the count every `poll`.
fn map_polling<T: Sync, R: Send>(
    items: &[T],
    parallel: bool,
    progress: &mut dyn crate::progress::Progress,
    label: &str,
    poll: std::time::Duration,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let done = AtomicU64::new(0);
    let finished = AtomicBool::new(false);
    progress.start(label, items.len() as u64);
    let caller = std::thread::current();
    let out = std::thread::scope(|s| {
        let worker = s.spawn(|| {
            let out = map(items, parallel, |x| {
                let r = f(x);
                done.fetch_add(1, Ordering::Relaxed);
                r
            });
            // Wake the caller now rather than at its next poll (an unpark before the park
            // makes that park return at once, so the wake-up cannot be lost).
            finished.store(true, Ordering::Release);
            caller.unpark();
            out
        });
        let mut shown = 0;
        let mut forward = |progress: &mut dyn crate::progress::Progress| {
            let now = done.load(Ordering::Relaxed);
            progress.inc(now - shown);
            shown = now;
        };
        while !finished.load(Ordering::Acquire) {
            std::thread::park_timeout(poll);
            forward(progress);
        }
        forward(progress);
        match worker.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    progress.finish();
    out
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

    /// Every item is reported, once, and the results keep their order.
    #[test]
    fn map_with_progress_reports_every_item() {
        #[derive(Default)]
        struct Count {
            started: u64,
            total: u64,
            finished: bool,
        }
        impl crate::progress::Progress for Count {
            fn start(&mut self, _: &str, total: u64) {
                self.started = total;
            }
            fn inc(&mut self, delta: u64) {
                self.total += delta;
            }
            fn finish(&mut self) {
                self.finished = true;
            }
        }
        let items: Vec<u64> = (0..40).collect();
        let mut count = Count::default();
        let out = super::map_with_progress(&items, true, &mut count, "test", |&x| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            x + 1
        });
        assert_eq!(out, (1..41).collect::<Vec<u64>>());
        assert_eq!((count.started, count.total, count.finished), (40, 40, true));
    }

    /// A map returns as soon as it is done, not at the caller's next poll: with an hour's
    /// poll, three maps still finish (a lost wake-up would hold each for the hour; the
    /// watchdog only turns that hang into a failure).
    #[test]
    fn map_with_progress_wakes_the_caller() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let items: Vec<u64> = (0..4).collect();
            let hour = std::time::Duration::from_secs(3600);
            for _ in 0..3 {
                let mut silent = crate::progress::Silent;
                super::map_polling(&items, true, &mut silent, "quick", hour, |x| x + 1);
            }
            tx.send(()).expect("the test waits");
        });
        let watchdog = std::time::Duration::from_secs(60);
        assert!(
            rx.recv_timeout(watchdog).is_ok(),
            "the caller was not woken"
        );
    }
}
