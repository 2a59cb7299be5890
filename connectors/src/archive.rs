//! The archive of `run --archive DIR`: every epoch's analysis tables, jobs and input records
//! as Parquet, queryable as `NAME_history` over a run of any length.
//!
//! An epoch is written as it closes, as its own segment `DIR/epoch=N/NAME.parquet`. A
//! background thread merges the newest [`FANOUT`] segments into one, `DIR/epochs=A-B/`,
//! whenever they are all of one level (a segment of level L spans at least FANOUT^L epochs):
//! the tiers of a log-structured merge. So a run of E epochs keeps fewer than
//! FANOUT·(log_FANOUT(E) + 1) directories and rewrites each row about log_FANOUT(E) times.
//! Unmerged, an archive grew by ten files an epoch (millions a day at 100 ms ticks), and a
//! history query opened every one of them.
//!
//! Readers ([`live_segments`]) see every archived epoch exactly once. A segment is written in
//! a hidden directory and appears by one rename. A segment whose epochs another one holds is
//! the source of a merge: readers skip it, and the merger deletes it after [`GRACE`], so that
//! a query that listed it just before can still read it. A crash at any point leaves such a
//! state; opening the archive again finishes the clean-up.

use std::collections::{BTreeSet, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow::array::{RecordBatch, UInt64Array};
use arrow::compute::filter_record_batch;
use arrow::compute::kernels::cmp::lt_eq;
use arrow::record_batch::RecordBatchReader;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use nashflow_schemas::arrow_io::{parquet_writer, write_parquet};

/// Segments merged at once (and the ratio of one level's span to the next's).
pub const FANOUT: usize = 16;

/// How long a merged segment's sources stay on disk for the readers that listed them.
pub const GRACE: Duration = Duration::from_secs(120);

/// Prefix of the directories being written (never read).
const HIDDEN: &str = ".tmp-";

/// The epochs `first..=last` of one segment directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Segment {
    pub first: u64,
    pub last: u64,
}

impl Segment {
    fn single(epoch: u64) -> Segment {
        Segment {
            first: epoch,
            last: epoch,
        }
    }

    /// Its directory's name: `epoch=N` for one epoch, `epochs=A-B` for a merge.
    pub fn name(&self) -> String {
        if self.first == self.last {
            format!("epoch={}", self.first)
        } else {
            format!("epochs={}-{}", self.first, self.last)
        }
    }

    fn parse(name: &str) -> Option<Segment> {
        if let Some(n) = name.strip_prefix("epoch=") {
            return n.parse().ok().map(Segment::single);
        }
        let (a, b) = name.strip_prefix("epochs=")?.split_once('-')?;
        let (first, last) = (a.parse().ok()?, b.parse().ok()?);
        (first <= last).then_some(Segment { first, last })
    }

    /// ⌊log_fanout(span)⌋: merging `fanout` segments of one level makes one of the next.
    fn level(&self, fanout: usize) -> u32 {
        let mut span = self.last - self.first + 1;
        let mut level = 0;
        while span >= fanout as u64 {
            span /= fanout as u64;
            level += 1;
        }
        level
    }

    fn path(&self, dir: &Path) -> PathBuf {
        dir.join(self.name())
    }
}

/// The segments of `dir` a reader uses, in epoch order, and the directories to delete (merge
/// sources whose epochs a larger segment holds, and unfinished writes).
fn scan(dir: &Path) -> Result<(Vec<Segment>, Vec<PathBuf>), String> {
    let mut found = Vec::new();
    let mut stale = Vec::new();
    let err = |e: std::io::Error| format!("archive {}: {e}", dir.display());
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !entry.file_type().map_err(err)?.is_dir() {
            continue;
        }
        if name.starts_with(HIDDEN) {
            stale.push(entry.path());
        } else if let Some(s) = Segment::parse(name) {
            found.push(s);
        }
    }
    // Widest first among equal starts; then a segment is covered exactly when it ends within
    // the last kept one.
    found.sort_by(|a, b| a.first.cmp(&b.first).then(b.last.cmp(&a.last)));
    let mut live: Vec<Segment> = Vec::new();
    for s in found {
        match live.last() {
            Some(k) if s.last <= k.last => stale.push(s.path(dir)),
            Some(k) if s.first <= k.last => {
                return Err(format!(
                    "archive {}: segments {} and {} overlap (not written by nashflow?)",
                    dir.display(),
                    k.name(),
                    s.name()
                ))
            }
            _ => live.push(s),
        }
    }
    Ok((live, stale))
}

/// The segments a query reads, in epoch order: each archived epoch in exactly one.
pub fn live_segments(dir: &Path) -> Result<Vec<Segment>, String> {
    Ok(scan(dir)?.0)
}

fn remove(path: &Path) -> Result<(), String> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("removing {}: {e}", path.display()))
        }
        _ => Ok(()),
    }
}

/// The rows of `batch` whose `epoch` is at most `last`.
fn through(batch: &RecordBatch, last: u64) -> Result<RecordBatch, String> {
    let epochs = batch
        .column_by_name("epoch")
        .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
        .ok_or("no UInt64 `epoch` column")?;
    let keep = lt_eq(epochs, &UInt64Array::new_scalar(last)).map_err(|e| e.to_string())?;
    filter_record_batch(batch, &keep).map_err(|e| e.to_string())
}

/// Writes `target` from the tables of `sources` (in order), each table streamed batch by
/// batch, keeping only the epochs up to `last` when given; it appears by one rename.
fn rewrite(
    dir: &Path,
    sources: &[Segment],
    target: Segment,
    last: Option<u64>,
) -> Result<(), String> {
    let tmp = dir.join(format!("{HIDDEN}{}", target.name()));
    remove(&tmp)?;
    std::fs::create_dir(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let mut names = BTreeSet::new();
    for s in sources {
        let path = s.path(dir);
        for f in std::fs::read_dir(&path).map_err(|e| format!("{}: {e}", path.display()))? {
            let p = f.map_err(|e| e.to_string())?.path();
            if p.extension().is_some_and(|e| e == "parquet") {
                if let Some(stem) = p.file_stem().and_then(|s| s.to_str()) {
                    names.insert(stem.to_string());
                }
            }
        }
    }
    for name in names {
        let file = format!("{name}.parquet");
        let mut out: Option<(
            parquet::arrow::ArrowWriter<File>,
            arrow::datatypes::SchemaRef,
        )> = None;
        for s in sources {
            let path = s.path(dir).join(&file);
            if !path.exists() {
                continue;
            }
            let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
            let reader = File::open(&path)
                .map_err(|e| err(&e))
                .and_then(|f| ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| err(&e)))
                .and_then(|b| b.build().map_err(|e| err(&e)))?;
            let schema = reader.schema();
            if out.is_none() {
                out = Some((
                    parquet_writer(&tmp.join(&file), schema.clone())?,
                    schema.clone(),
                ));
            }
            let (writer, want) = out.as_mut().expect("just set");
            if schema != *want {
                return Err(err(
                    &"its columns differ from the earlier epochs'; not merged",
                ));
            }
            for batch in reader {
                let batch = batch.map_err(|e| err(&e))?;
                let batch = match last {
                    Some(last) => through(&batch, last).map_err(|e| err(&e))?,
                    None => batch,
                };
                if batch.num_rows() > 0 {
                    writer.write(&batch).map_err(|e| err(&e))?;
                }
            }
        }
        if let Some((writer, _)) = out {
            writer.close().map_err(|e| format!("{name}: {e}"))?;
        }
    }
    let dest = target.path(dir);
    std::fs::rename(&tmp, &dest).map_err(|e| format!("{}: {e}", dest.display()))
}

/// Where in `live` the newest `fanout` segments start, when they are all of one level.
fn mergeable(live: &[Segment], fanout: usize) -> Option<usize> {
    let start = live.len().checked_sub(fanout)?;
    let level = live[start].level(fanout);
    live[start..]
        .iter()
        .all(|s| s.level(fanout) == level)
        .then_some(start)
}

/// The merger thread: takes each new segment, merges while [`mergeable`], and deletes merge
/// sources once their [`GRACE`] is over (all of them when the run ends). After a failed merge
/// it merges no more (the archive stays complete, unmerged) and reports the failure at the end.
fn merge_loop(
    dir: PathBuf,
    mut live: Vec<Segment>,
    fanout: usize,
    grace: Duration,
    new: mpsc::Receiver<Segment>,
) -> Result<(), String> {
    let mut retired: VecDeque<(PathBuf, Instant)> = VecDeque::new();
    let mut failed: Option<String> = None;
    for segment in new {
        live.push(segment);
        while let Some(start) = mergeable(&live, fanout).filter(|_| failed.is_none()) {
            let sources = live.split_off(start);
            let merged = Segment {
                first: sources[0].first,
                last: sources[sources.len() - 1].last,
            };
            match rewrite(&dir, &sources, merged, None) {
                Ok(()) => {
                    live.push(merged);
                    let now = Instant::now();
                    retired.extend(sources.iter().map(|s| (s.path(&dir), now)));
                }
                Err(e) => {
                    live.extend(sources);
                    failed = Some(format!("merging {}: {e}", merged.name()));
                }
            }
        }
        while let Some((path, _)) = retired.front().filter(|(_, at)| at.elapsed() >= grace) {
            remove(path)?;
            retired.pop_front();
        }
    }
    for (path, _) in retired {
        remove(&path)?;
    }
    failed.map_or(Ok(()), Err)
}

/// An archive being written by a run.
pub struct Archive {
    dir: PathBuf,
    /// The last epoch archived (this run's or, continued from `--state`, the earlier one's).
    last: Option<u64>,
    merger: Option<Merger>,
}

/// The merge thread, and the channel that hands it each new segment.
type Merger = (mpsc::Sender<Segment>, JoinHandle<Result<(), String>>);

impl Archive {
    /// Opens `dir` (created if missing) for a run whose first epoch follows `kept_through`,
    /// the epoch a `--state` restore rebuilt: later epochs (written after that state was
    /// saved) are dropped, so that the run continues the archive without a seam. A fresh run
    /// (`None`) needs an archive without epochs: two runs' epochs would share numbers.
    pub fn open(dir: &Path, kept_through: Option<u64>) -> Result<Archive, String> {
        Self::open_with(dir, kept_through, FANOUT, GRACE)
    }

    fn open_with(
        dir: &Path,
        kept_through: Option<u64>,
        fanout: usize,
        grace: Duration,
    ) -> Result<Archive, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("archive {}: {e}", dir.display()))?;
        let (mut live, stale) = scan(dir)?;
        for path in stale {
            remove(&path)?;
        }
        match (kept_through, live.first(), live.last()) {
            (None, Some(a), Some(b)) => {
                return Err(format!(
                    "archive {} already holds epochs {}–{} of another run: archive into an \
                     empty directory, or give that run's --state to continue it",
                    dir.display(),
                    a.first,
                    b.last
                ))
            }
            (Some(keep), _, _) => {
                let mut kept = Vec::new();
                for s in live {
                    if s.last <= keep {
                        kept.push(s);
                        continue;
                    }
                    if s.first <= keep {
                        let cut = Segment {
                            first: s.first,
                            last: keep,
                        };
                        rewrite(dir, &[s], cut, Some(keep))?;
                        kept.push(cut);
                    }
                    remove(&s.path(dir))?;
                }
                live = kept;
            }
            _ => {}
        }
        let last = live.last().map(|s| s.last);
        let (tx, rx) = mpsc::channel();
        let merger = {
            let dir = dir.to_path_buf();
            std::thread::Builder::new()
                .name("archive-merge".into())
                .spawn(move || merge_loop(dir, live, fanout, grace, rx))
                .map_err(|e| format!("archive: starting the merge thread: {e}"))?
        };
        Ok(Archive {
            dir: dir.to_path_buf(),
            last,
            merger: Some((tx, merger)),
        })
    }

    /// Archives one epoch's tables (each carries an `epoch` column), after every earlier one.
    pub fn write_epoch(
        &mut self,
        epoch: u64,
        tables: &[(&str, RecordBatch)],
    ) -> Result<(), String> {
        if let Some(last) = self.last.filter(|&l| epoch <= l) {
            return Err(format!(
                "epoch {epoch} is not after the last archived one ({last})"
            ));
        }
        let segment = Segment::single(epoch);
        let tmp = self.dir.join(format!("{HIDDEN}{}", segment.name()));
        remove(&tmp)?;
        std::fs::create_dir(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        for (name, batch) in tables {
            write_parquet(&tmp.join(format!("{name}.parquet")), batch)?;
        }
        let dest = segment.path(&self.dir);
        std::fs::rename(&tmp, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        self.last = Some(epoch);
        if let Some((tx, _)) = &self.merger {
            // A merger that stopped reports why in `finish`.
            let _ = tx.send(segment);
        }
        Ok(())
    }

    /// Waits for the merges in progress and deletes their sources.
    pub fn finish(mut self) -> Result<(), String> {
        let Some((tx, merger)) = self.merger.take() else {
            return Ok(());
        };
        drop(tx);
        match merger.join() {
            Ok(r) => r.map_err(|e| format!("archive {}: {e}", self.dir.display())),
            Err(_) => Err(format!(
                "archive {}: the merge thread panicked",
                self.dir.display()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("nashflow-archive-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// Two tables per epoch: `t` with `epoch + 1` rows, `u` with one.
    fn tables(epoch: u64) -> Vec<(&'static str, RecordBatch)> {
        let batch = |rows: usize| {
            let schema = Arc::new(Schema::new(vec![
                Field::new("epoch", DataType::UInt64, false),
                Field::new("tag", DataType::Utf8, false),
            ]));
            let tags: Vec<String> = (0..rows).map(|r| format!("{epoch}.{r}")).collect();
            RecordBatch::try_new(
                schema,
                vec![
                    Arc::new(UInt64Array::from(vec![epoch; rows])),
                    Arc::new(StringArray::from(tags)),
                ],
            )
            .unwrap()
        };
        vec![("t", batch(epoch as usize % 5 + 1)), ("u", batch(1))]
    }

    /// Every row of table `name` a reader sees, as tags, in epoch order.
    fn read(dir: &Path, name: &str) -> Vec<String> {
        let mut tags = Vec::new();
        for s in live_segments(dir).unwrap() {
            let path = s.path(dir).join(format!("{name}.parquet"));
            let Ok(batches) = nashflow_schemas::arrow_io::read_parquet_batches(&path) else {
                // Deleted after its grace, between the listing and the read: a reader that
                // slow is what the grace is for; the tests use a long one.
                panic!("{} vanished", path.display());
            };
            for b in batches {
                let col = b.column_by_name("tag").unwrap();
                let col = col.as_any().downcast_ref::<StringArray>().unwrap();
                tags.extend((0..col.len()).map(|k| col.value(k).to_string()));
            }
        }
        tags
    }

    fn expected(name: &str, epochs: std::ops::RangeInclusive<u64>) -> Vec<String> {
        epochs
            .flat_map(|e| {
                let rows = if name == "t" { e as usize % 5 + 1 } else { 1 };
                (0..rows).map(move |r| format!("{e}.{r}"))
            })
            .collect()
    }

    #[test]
    fn segment_names_round_trip() {
        for s in [Segment::single(7), Segment { first: 0, last: 15 }] {
            assert_eq!(Segment::parse(&s.name()), Some(s));
        }
        assert_eq!(Segment::parse("epochs=5-3"), None);
        assert_eq!(Segment::parse("epoch=x"), None);
        assert_eq!(Segment { first: 0, last: 15 }.level(16), 1);
        assert_eq!(Segment { first: 0, last: 14 }.level(16), 0);
        assert_eq!(
            Segment {
                first: 0,
                last: 255
            }
            .level(16),
            2
        );
    }

    /// A fresh archive in `d` of `epochs` epochs merged with `fanout` (no grace).
    fn written(d: &Path, fanout: usize, epochs: u64) {
        let mut a = Archive::open_with(d, None, fanout, Duration::ZERO).unwrap();
        for e in 0..epochs {
            a.write_epoch(e, &tables(e)).unwrap();
        }
        a.finish().unwrap();
    }

    /// 100 epochs with fan-out 3: the readers see each epoch once and in order, in one
    /// segment per digit of 100 in base 3, and the merges' sources are gone.
    #[test]
    fn merges_keep_every_epoch_once_and_few_directories() {
        let d = dir("merge");
        written(&d, 3, 100);
        assert_eq!(read(&d, "t"), expected("t", 0..=99));
        assert_eq!(read(&d, "u"), expected("u", 0..=99));
        let segments = live_segments(&d).unwrap();
        // 100 = 81 + 2·9 + 1: one segment of level 4, two of level 2, one single epoch.
        let names: Vec<String> = segments.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            ["epochs=0-80", "epochs=81-89", "epochs=90-98", "epoch=99"]
        );
        let dirs = std::fs::read_dir(&d).unwrap().count();
        assert_eq!(dirs, segments.len(), "merge sources are deleted");
        // Continuing from a state saved at epoch 95: epochs 96–99 are dropped, the run goes on.
        let mut a = Archive::open_with(&d, Some(95), 3, Duration::ZERO).unwrap();
        assert_eq!(read(&d, "t"), expected("t", 0..=95));
        assert!(
            a.write_epoch(95, &tables(95)).is_err(),
            "epochs only go forward"
        );
        for e in 96..110 {
            a.write_epoch(e, &tables(e)).unwrap();
        }
        a.finish().unwrap();
        assert_eq!(read(&d, "t"), expected("t", 0..=109));
        // A fresh run refuses an archive with epochs.
        let err = Archive::open_with(&d, None, 3, Duration::ZERO)
            .err()
            .unwrap();
        assert!(err.contains("already holds epochs 0–109"), "{err}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A reader polling while epochs are written and merged never sees an epoch twice or a
    /// gap: every read is the epochs 0..=k of some k.
    #[test]
    fn concurrent_readers_see_whole_prefixes() {
        let d = dir("readers");
        let mut a = Archive::open_with(&d, None, 2, GRACE).unwrap();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (d, done) = (d.clone(), done.clone());
            std::thread::spawn(move || {
                let mut reads = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let seen = read(&d, "u");
                    if let Some(k) = (seen.len() as u64).checked_sub(1) {
                        assert_eq!(seen, expected("u", 0..=k));
                    }
                    reads += 1;
                }
                reads
            })
        };
        for e in 0..300 {
            a.write_epoch(e, &tables(e)).unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let reads = reader.join().unwrap();
        assert!(reads > 10, "the reader ran alongside ({reads} reads)");
        a.finish().unwrap();
        assert_eq!(read(&d, "u"), expected("u", 0..=299));
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// What a crash leaves (a merge renamed in but its sources not deleted; a cut of it renamed
    /// in but not the source deleted; an unfinished write) reads as before, and opening cleans
    /// it up.
    #[test]
    fn a_crash_at_any_step_reads_consistently() {
        let d = dir("crash");
        written(&d, 1000, 6);
        let sources: Vec<Segment> = (0..4).map(Segment::single).collect();
        rewrite(&d, &sources, Segment { first: 0, last: 3 }, None).unwrap();
        rewrite(
            &d,
            &[Segment { first: 0, last: 3 }],
            Segment { first: 0, last: 2 },
            Some(2),
        )
        .unwrap();
        std::fs::create_dir(d.join(".tmp-epoch=6")).unwrap();
        std::fs::write(d.join(".tmp-epoch=6/t.parquet"), b"half").unwrap();
        assert_eq!(read(&d, "t"), expected("t", 0..=5));
        let a = Archive::open_with(&d, Some(5), 1000, Duration::ZERO).unwrap();
        a.finish().unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["epoch=4", "epoch=5", "epochs=0-3"]);
        assert_eq!(read(&d, "t"), expected("t", 0..=5));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
