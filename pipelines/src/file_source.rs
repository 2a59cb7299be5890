//! The file sources of `nashflow run`: files, directories (optionally watched for new files)
//! and stdin, read in order into the run's channel.
//!
//! Bad input never stops a run: a bad row, a line that is not UTF-8 and a file whose content
//! cannot be read (a corrupt Parquet footer, an unreadable CSV header) are dead letters, and
//! the rows around them are kept. Only a path named on the command line that cannot be opened
//! at all is fatal (a usage error).
//!
//! A watched directory follows the usual convention of directory sources: a new file is read
//! once, when it has stopped changing (the same size and modification time at two polls in a
//! row), and names starting with `.` or `_` are skipped, so a writer can write `.part` files
//! and rename them into place. A file is never re-read: append by writing new files.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nashflow_schemas::read::{stream_file, stream_json_lines, Format};
use nashflow_schemas::{FileError, RecordError};

use crate::run::{Item, ItemSender};

/// How often a watched directory is listed.
const POLL: Duration = Duration::from_millis(500);

/// Reads every input in order into `tx`: files, directories (watched with `watch`), stdin.
/// Returns when the inputs are exhausted (never, while watching without `exit_at_end`) or
/// the receiver is gone.
pub fn read_sources(inputs: Vec<PathBuf>, watch: bool, exit_at_end: bool, tx: ItemSender) {
    let mut seen: HashSet<PathBuf> = HashSet::new();
    let mut skipped: HashSet<PathBuf> = HashSet::new();
    let mut dirs = Vec::new();
    for input in &inputs {
        let sent = if input.as_os_str() == "-" {
            read_stdin(&tx)
        } else if input.is_dir() {
            dirs.push(input.clone());
            listing(input, &mut skipped).into_iter().all(|f| {
                seen.insert(f.clone());
                send_file(&f, false, &tx)
            })
        } else {
            send_file(input, true, &tx)
        };
        if !sent {
            return;
        }
    }
    if !watch || exit_at_end {
        return;
    }
    let mut settling = Settling::default();
    loop {
        std::thread::sleep(POLL);
        let new: Vec<(PathBuf, Stamp)> = dirs
            .iter()
            .flat_map(|d| listing(d, &mut skipped))
            .filter(|f| !seen.contains(f))
            .filter_map(|f| stamp(&f).map(|s| (f, s)))
            .collect();
        for f in settling.poll(new) {
            seen.insert(f.clone());
            if !send_file(&f, false, &tx) {
                return;
            }
        }
    }
}

/// Sends a file's rows and bad rows, in batches as they are decoded (so a large file's first
/// epochs start while it is still being read, and the channel's bound holds it back). A file
/// that cannot be opened is fatal when it was named on the command line (`named`), else
/// (found in a directory) a dead letter. False when the receiver is gone.
fn send_file(path: &Path, named: bool, tx: &ItemSender) -> bool {
    let source: Arc<str> = path.display().to_string().into();
    let mut batch = Vec::with_capacity(BATCH);
    let mut alive = true;
    let streamed = stream_file(path, &mut |_, _| {}, &mut |r| {
        batch.push(match r {
            Ok((row, m)) => Item::Record(m, source.clone(), row),
            Err(e) => Item::Bad(e),
        });
        if batch.len() == BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
            alive = tx.send(Item::Batch(full)).is_ok();
        }
        alive
    });
    if let Err(e) = streamed {
        let item = if named {
            Item::Fatal(e.to_string())
        } else {
            Item::Bad(not_opened(path, e))
        };
        return tx.send(item).is_ok();
    }
    alive && (batch.is_empty() || tx.send(Item::Batch(batch)).is_ok())
}

/// Items per channel hand-off.
const BATCH: usize = crate::run::SOURCE_BATCH;

/// A file found in a directory that cannot be opened, as its dead letter.
pub fn not_opened(path: &Path, e: FileError) -> RecordError {
    let source = path.display().to_string();
    let FileError::Unreadable { reason, .. } = e;
    RecordError::file(&source, reason)
}

/// JSON Lines from stdin until end of input, each row sent as it arrives. A line that is
/// not UTF-8 or not a record is a dead letter; a failed read is fatal (it is not the end of
/// the input).
fn read_stdin(tx: &ItemSender) -> bool {
    // Typed input is easy to mistake for a hang.
    if std::io::stdin().is_terminal() {
        eprintln!(
            "reading JSON Lines (one match per line) from the terminal; Ctrl-D ends the input"
        );
    }
    let source: Arc<str> = "stdin".into();
    let mut alive = true;
    let broke = stream_json_lines("stdin", std::io::stdin().lock(), &mut |r| {
        let item = match r {
            Ok((row, m)) => Item::Record(m, source.clone(), row),
            Err(e) => Item::Bad(e),
        };
        alive = tx.send(item).is_ok();
        alive
    });
    match broke {
        Some(reason) => {
            let _ = tx.send(Item::Fatal(format!("stdin: {reason}")));
            false
        }
        None => alive,
    }
}

/// The match logs in `dir`, in name order: files of a known type whose names do not start
/// with `.` or `_` (files being written, by convention). Another file is named on stderr
/// once (`skipped` remembers it), so that a log in an unsupported form does not vanish
/// unnoticed.
pub fn listing(dir: &Path, skipped: &mut HashSet<PathBuf>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && !hidden(f))
                .collect()
        })
        .unwrap_or_default();
    files.retain(|f| {
        let known = Format::from_path(f).is_some();
        if !known && skipped.insert(f.clone()) {
            eprintln!(
                "note: skipping {} (not .csv, .jsonl/.ndjson/.json or .parquet)",
                f.display()
            );
        }
        known
    });
    files.sort();
    files
}

fn hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.') || n.starts_with('_'))
}

/// What a poll sees of a file: its size and modification time.
type Stamp = (u64, Option<SystemTime>);

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()))
}

/// New files of a watched directory, until they stop changing.
#[derive(Default)]
struct Settling {
    last: HashMap<PathBuf, Stamp>,
}

impl Settling {
    /// Given this poll's new files, the ones unchanged since the previous poll (in the order
    /// given), which are forgotten here; the others wait for the next poll. A file that
    /// disappeared is forgotten.
    fn poll(&mut self, now: Vec<(PathBuf, Stamp)>) -> Vec<PathBuf> {
        let mut ready = Vec::new();
        let mut waiting = HashMap::new();
        for (f, s) in now {
            if self.last.get(&f) == Some(&s) {
                ready.push(f);
            } else {
                waiting.insert(f, s);
            }
        }
        self.last = waiting;
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file is ready at the first poll that sees it unchanged; one still growing waits,
    /// and one that vanished is dropped.
    #[test]
    fn new_files_are_read_once_they_stop_changing() {
        let t = |s: u64| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        let (a, b, c) = (PathBuf::from("a"), PathBuf::from("b"), PathBuf::from("c"));
        let mut s = Settling::default();
        assert!(s
            .poll(vec![(a.clone(), (10, t(1))), (b.clone(), (5, t(1)))])
            .is_empty());
        // a unchanged: ready; b grew; c is new.
        let ready = s.poll(vec![
            (a.clone(), (10, t(1))),
            (b.clone(), (7, t(2))),
            (c.clone(), (1, t(2))),
        ]);
        assert_eq!(ready, vec![a]);
        // b's size held but its time moved: still waiting; c vanished.
        assert!(s.poll(vec![(b.clone(), (7, t(3)))]).is_empty());
        assert_eq!(s.poll(vec![(b.clone(), (7, t(3)))]), vec![b]);
        assert!(
            s.poll(vec![(c.clone(), (1, t(2)))]).is_empty(),
            "c was forgotten"
        );
    }

    #[test]
    fn dot_and_underscore_files_are_skipped() {
        assert!(hidden(Path::new("dir/.part.csv")));
        assert!(hidden(Path::new("dir/_tmp.jsonl")));
        assert!(!hidden(Path::new("dir/matches_1.csv")));
        assert!(!hidden(Path::new("_dir/matches.csv")));
    }
}
