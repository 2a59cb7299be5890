//! Ctrl-C (SIGINT) and SIGTERM stop a live `run` gracefully: the sources stop, the epoch in
//! progress is applied, and the run ends as if its inputs had (`--out` written, results
//! printed). A second signal takes the default action and ends the process at once.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: all that is safe inside a signal handler.
    REQUESTED.store(true, Ordering::Relaxed);
}

/// Installs the handler for SIGINT and SIGTERM, once per signal (`SA_RESETHAND`).
pub fn install() {
    // SAFETY: the handler only stores to an atomic; `sa` is fully initialised (zeroed, then
    // its handler, flags and empty mask set) before `sigaction` reads it.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESETHAND;
        libc::sigemptyset(&mut sa.sa_mask);
        for sig in [libc::SIGINT, libc::SIGTERM] {
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}
