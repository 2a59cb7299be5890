//! The process CPU clock: what "CPU per epoch" measures. An epoch's work runs on the feeder,
//! the timely workers and the kernels' threads, all of which are idle between epochs, so the
//! difference of this clock across an epoch is that epoch's CPU, on every core together.

/// CPU seconds used by every thread of this process so far.
pub fn process_cpu_seconds() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec; the clock id is a constant the C library defines.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_clock_advances_with_work() {
        let t0 = super::process_cpu_seconds();
        let mut x = 0u64;
        for k in 0..20_000_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(k);
        }
        std::hint::black_box(x);
        assert!(super::process_cpu_seconds() > t0);
    }
}
