//! Software prefetch: start loading a cache line that is about to be read, so that the misses
//! of several records overlap instead of each stalling in turn. A hint only: it never faults
//! and changes nothing but the caches (a no-op off x86-64).

use crate::Match;

/// Starts loading the cache line holding `p`.
pub fn line<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults, whatever the address, and changes nothing but the
    // caches; SSE, which provides it, is part of the x86-64 baseline.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Starts loading a record's fields (its lines, not the text they point to).
pub fn record(m: &Match) {
    let p = (m as *const Match).cast::<u8>();
    for k in 0..std::mem::size_of::<Match>().div_ceil(64) {
        line(p.wrapping_add(k * 64));
    }
}

/// Starts loading the text of a record's key and names (reads its fields: prefetch those
/// first, with [`record`]).
pub fn names(m: &Match) {
    for s in [&m.match_id, &m.game, &m.policy_i, &m.policy_j] {
        line(s.as_ptr());
    }
}
