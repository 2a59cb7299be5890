//! Independent solves (leave-one-out games, bootstrap replicates) spread over the machine's
//! cores with scoped threads. Results come back in input order, so no output depends on the
//! thread count. `NASHFLOW_KERNEL_THREADS=1` keeps a kernel on one core (the benchmarks'
//! per-core figures).

use std::sync::OnceLock;

/// Games smaller than this are solved inline: a thread costs more than their solves.
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

/// `items.map(f)` in order, on up to [`threads`] threads when `parallel`.
pub fn map<T: Sync, R: Send>(items: &[T], parallel: bool, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let t = if parallel {
        threads().min(items.len())
    } else {
        1
    };
    if t <= 1 {
        return items.iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(t);
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a kernel thread panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn map_keeps_order() {
        let items: Vec<u64> = (0..1000).collect();
        let out = super::map(&items, true, |x| x * x);
        assert_eq!(out, items.iter().map(|x| x * x).collect::<Vec<_>>());
        assert!(super::map(&[] as &[u64], true, |x| *x).is_empty());
    }
}
