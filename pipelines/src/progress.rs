//! Terminal progress bars for long kernels; silent when stderr is not a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use nashflow_kernels::progress::Progress;

pub struct Bar {
    enabled: bool,
    bar: Option<ProgressBar>,
}

impl Bar {
    /// A bar on stderr when it is a terminal (and `quiet` is off); otherwise nothing.
    pub fn new(quiet: bool) -> Self {
        Bar {
            enabled: !quiet && std::io::stderr().is_terminal(),
            bar: None,
        }
    }
}

impl Progress for Bar {
    fn start(&mut self, label: &str, total: u64) {
        if !self.enabled {
            return;
        }
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} ({eta} left)")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_message(label.to_string());
        self.bar = Some(bar);
    }

    fn inc(&mut self, delta: u64) {
        if let Some(b) = &self.bar {
            b.inc(delta);
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// A bar of the bytes read of one input file, shown once a file turns out to be large
/// (small files would only flicker); silent when stderr is not a terminal or `quiet`.
pub struct ReadBar {
    enabled: bool,
    label: String,
    bar: Option<ProgressBar>,
}

impl ReadBar {
    /// Files below this size get no bar.
    const MIN_BYTES: u64 = 16 << 20;

    pub fn new(quiet: bool, path: &std::path::Path) -> Self {
        ReadBar {
            enabled: !quiet && std::io::stderr().is_terminal(),
            label: format!("reading {}", path.display()),
            bar: None,
        }
    }

    /// `done` of `total` bytes read.
    pub fn report(&mut self, done: u64, total: u64) {
        if !self.enabled || total < Self::MIN_BYTES {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta} left)")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            bar.set_message(self.label.clone());
            bar
        });
        bar.set_position(done);
    }

    pub fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
