//! The address a `nashflow run --listen 127.0.0.1:0` serves on, shared by the server tests
//! and the soak bench.

use std::io::{BufRead, BufReader};
use std::process::Child;

/// Reads the child's first stderr line (`serving on http://ADDR`) and returns ADDR; then
/// keeps draining its stderr so that the child never blocks on a full pipe.
pub fn served_address(child: &mut Child) -> String {
    let mut err = BufReader::new(child.stderr.take().expect("stderr is piped"));
    let mut line = String::new();
    err.read_line(&mut line).expect("the run's first line");
    let addr = line
        .trim()
        .strip_prefix("serving on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    std::thread::spawn(move || for _ in err.lines() {});
    addr
}
