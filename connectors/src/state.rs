//! The durable state of a run (`nashflow run --state DIR`).
//!
//! Each applied epoch appends one Parquet segment of its input records (as received, with
//! `retract` and where each came from) and one of the rows it rejected; then the manifest
//! (`state.json`: last durable epoch, source offsets, segment list, jobs so far) is replaced
//! atomically (write, fsync, rename, fsync the directory). Only after that are the offsets
//! committed to Kafka, so a crash at any point leaves a manifest whose segments and offsets
//! agree: a restart replays the segments into the engine and reads on from those offsets.
//! A segment not named by the manifest (a crash between the two writes) is ignored and
//! overwritten.
//!
//! Compaction ([`StateDir::compact`]) replaces the segments by a snapshot: the live records
//! (the ledger after dedupe and retraction, in arrival order) and every row rejected so far.
//! That is exact: a retracted id is free again, so the live set is the whole dedupe state, and
//! the conflicts the dropped records caused are kept as rows.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, UInt64Type};
use std::collections::BTreeMap;

use nashflow_operators::trigger::{Job, Trigger};
use nashflow_schemas::arrow_io::{
    append_columns, dead_letters_batch, read_parquet_batches, records_batch, write_parquet,
};
use nashflow_schemas::read::read_parquet;
use nashflow_schemas::{Match, RecordError};
use serde::{Deserialize, Serialize};

use crate::kafka::Offsets;

const MANIFEST: &str = "state.json";
const VERSION: u32 = 1;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    version: u32,
    /// Last durable epoch.
    epoch: u64,
    /// Next offset to read per topic partition.
    offsets: Vec<OffsetEntry>,
    /// Epoch of the snapshot the segments follow, if any.
    #[serde(default)]
    base: Option<u64>,
    /// Epochs with a segment, in order.
    segments: Vec<u64>,
    jobs: Vec<Job>,
    /// PSRO trigger state per game (hysteresis, cool-down, standing σ).
    #[serde(default)]
    triggers: BTreeMap<String, Trigger>,
}

#[derive(Debug, Serialize, Deserialize)]
struct OffsetEntry {
    topic: String,
    partition: i32,
    next: i64,
}

/// What a restart starts from.
#[derive(Debug, Default)]
pub struct Restored {
    /// Last durable epoch; the resumed run continues at `epoch + 1`.
    pub epoch: u64,
    pub offsets: Offsets,
    /// Every input record so far, in arrival order, with its (source, row).
    pub records: Vec<(Match, String, u64)>,
    /// Rows rejected so far.
    pub bad: Vec<RecordError>,
    pub jobs: Vec<Job>,
    pub triggers: BTreeMap<String, Trigger>,
}

/// What a durable epoch saves besides its records: the jobs and trigger state so far, and
/// the source offsets after it.
pub struct Progress<'a> {
    pub jobs: &'a [Job],
    pub triggers: &'a BTreeMap<String, Trigger>,
    pub offsets: &'a Offsets,
}

/// An open state directory.
pub struct StateDir {
    dir: PathBuf,
    manifest: Manifest,
}

impl StateDir {
    /// Opens (creating) `dir`; `Some` when it holds a durable state to resume from.
    pub fn open(dir: &Path) -> Result<(StateDir, Option<Restored>), String> {
        let ctx = |e: std::io::Error| format!("state directory {}: {e}", dir.display());
        fs::create_dir_all(dir.join("segments")).map_err(ctx)?;
        let path = dir.join(MANIFEST);
        if !path.exists() {
            return Ok((
                StateDir {
                    dir: dir.to_path_buf(),
                    manifest: Manifest {
                        version: VERSION,
                        ..Default::default()
                    },
                },
                None,
            ));
        }
        let text = fs::read_to_string(&path).map_err(ctx)?;
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a nashflow state manifest: {e}", path.display()))?;
        if manifest.version != VERSION {
            return Err(format!(
                "{}: state version {} (this nashflow reads {VERSION})",
                path.display(),
                manifest.version
            ));
        }
        let mut restored = Restored {
            epoch: manifest.epoch,
            offsets: manifest
                .offsets
                .iter()
                .map(|o| ((o.topic.clone(), o.partition), o.next))
                .collect(),
            jobs: manifest.jobs.clone(),
            triggers: manifest.triggers.clone(),
            ..Default::default()
        };
        let state = StateDir {
            dir: dir.to_path_buf(),
            manifest,
        };
        if let Some(base) = state.manifest.base {
            restored
                .records
                .extend(state.read_records(&state.base_path(base, false))?);
            restored
                .bad
                .extend(state.read_bad(&state.base_path(base, true))?);
        }
        for &epoch in &state.manifest.segments {
            restored
                .records
                .extend(state.read_records(&state.records_path(epoch))?);
            restored.bad.extend(state.read_bad(&state.bad_path(epoch))?);
        }
        Ok((state, Some(restored)))
    }

    fn records_path(&self, epoch: u64) -> PathBuf {
        self.dir.join(format!("segments/epoch-{epoch:08}.parquet"))
    }

    fn bad_path(&self, epoch: u64) -> PathBuf {
        self.dir
            .join(format!("segments/epoch-{epoch:08}.dead.parquet"))
    }

    fn base_path(&self, epoch: u64, dead: bool) -> PathBuf {
        let kind = if dead { ".dead" } else { "" };
        self.dir
            .join(format!("segments/base-{epoch:08}{kind}.parquet"))
    }

    /// Segments written since the last snapshot.
    pub fn segments(&self) -> usize {
        self.manifest.segments.len()
    }

    fn read_records(&self, path: &Path) -> Result<Vec<(Match, String, u64)>, String> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|e| format!("{name}: {e}"))?;
        let out = read_parquet(&name, file).map_err(|e| format!("{name}: {e}"))?;
        if let Some(e) = out.errors.first() {
            return Err(format!("{name}: corrupt state segment: {e}"));
        }
        let mut origin = Vec::new();
        for batch in read_parquet_batches(path)? {
            let (Some(src), Some(row)) = (
                batch.column_by_name("origin_source"),
                batch.column_by_name("origin_row"),
            ) else {
                return Err(format!("{name}: state segment without origin columns"));
            };
            let (src, row) = (src.as_string::<i32>(), row.as_primitive::<UInt64Type>());
            origin.extend((0..batch.num_rows()).map(|i| (src.value(i).to_string(), row.value(i))));
        }
        if origin.len() != out.matches.len() {
            return Err(format!("{name}: corrupt state segment (row counts differ)"));
        }
        Ok(out
            .matches
            .into_iter()
            .zip(origin)
            .map(|((_, m), (s, r))| (m, s, r))
            .collect())
    }

    fn read_bad(&self, path: &Path) -> Result<Vec<RecordError>, String> {
        let mut out = Vec::new();
        for batch in read_parquet_batches(path)? {
            let text = |name: &str| -> Result<&StringArray, String> {
                batch
                    .column_by_name(name)
                    .map(|c| c.as_string::<i32>())
                    .ok_or_else(|| format!("{}: no column `{name}`", path.display()))
            };
            let (source, field, reason, raw) = (
                text("source")?,
                text("field")?,
                text("reason")?,
                text("raw")?,
            );
            let row = batch
                .column_by_name("row")
                .map(|c| c.as_primitive::<UInt64Type>())
                .ok_or_else(|| format!("{}: no column `row`", path.display()))?;
            for i in 0..batch.num_rows() {
                out.push(RecordError {
                    source_name: source.value(i).to_string(),
                    row: row.value(i),
                    field: (!field.is_null(i)).then(|| field.value(i).to_string()),
                    reason: reason.value(i).to_string(),
                    raw: raw.value(i).to_string(),
                });
            }
        }
        Ok(out)
    }

    /// Makes epoch `epoch` durable: its records (with origins), its rejected rows and
    /// `progress`. Returns once the manifest is on disk.
    pub fn append(
        &mut self,
        epoch: u64,
        records: &[(&Match, &str, u64)],
        bad: &[RecordError],
        progress: &Progress,
    ) -> Result<(), String> {
        write_records(&self.records_path(epoch), records)?;
        write_bad(&self.bad_path(epoch), bad)?;
        self.manifest.segments.retain(|&e| e != epoch);
        self.manifest.segments.push(epoch);
        self.commit(epoch, progress)
    }

    /// Makes epoch `epoch` durable as a snapshot: `live` is the ledger's live records after it
    /// (arrival order, with origins) and `rejected` every row rejected so far. The segments
    /// it replaces are deleted once the new manifest is on disk.
    pub fn compact(
        &mut self,
        epoch: u64,
        live: &[(&Match, &str, u64)],
        rejected: &[RecordError],
        progress: &Progress,
    ) -> Result<(), String> {
        write_records(&self.base_path(epoch, false), live)?;
        write_bad(&self.base_path(epoch, true), rejected)?;
        let old_base = self.manifest.base.replace(epoch);
        let old_segments = std::mem::take(&mut self.manifest.segments);
        self.commit(epoch, progress)?;
        // Leftovers are harmless (never named again), so removal errors are ignored.
        for e in old_segments {
            let _ = fs::remove_file(self.records_path(e));
            let _ = fs::remove_file(self.bad_path(e));
        }
        if let Some(b) = old_base.filter(|&b| b != epoch) {
            let _ = fs::remove_file(self.base_path(b, false));
            let _ = fs::remove_file(self.base_path(b, true));
        }
        Ok(())
    }

    /// Writes the manifest for `epoch` atomically (temp file, fsync, rename, fsync dir).
    fn commit(&mut self, epoch: u64, progress: &Progress) -> Result<(), String> {
        self.manifest.epoch = epoch;
        self.manifest.jobs = progress.jobs.to_vec();
        self.manifest.triggers = progress.triggers.clone();
        self.manifest.offsets = progress
            .offsets
            .iter()
            .map(|((topic, partition), next)| OffsetEntry {
                topic: topic.clone(),
                partition: *partition,
                next: *next,
            })
            .collect();
        let text = serde_json::to_string_pretty(&self.manifest).map_err(|e| e.to_string())?;
        let tmp = self.dir.join(format!("{MANIFEST}.tmp"));
        let ctx = |e: std::io::Error| format!("state manifest {}: {e}", tmp.display());
        let mut f = File::create(&tmp).map_err(ctx)?;
        f.write_all(text.as_bytes()).map_err(ctx)?;
        f.sync_all().map_err(ctx)?;
        fs::rename(&tmp, self.dir.join(MANIFEST)).map_err(ctx)?;
        sync(&self.dir)
    }
}

/// Records with their origins as a synced Parquet file.
fn write_records(path: &Path, records: &[(&Match, &str, u64)]) -> Result<(), String> {
    let batch = records_batch(records.iter().map(|(m, _, _)| *m));
    let src: ArrayRef = Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.1)));
    let row: ArrayRef = Arc::new(UInt64Array::from_iter_values(records.iter().map(|r| r.2)));
    let batch = append_columns(
        &batch,
        vec![
            (Field::new("origin_source", DataType::Utf8, false), src),
            (Field::new("origin_row", DataType::UInt64, false), row),
        ],
    );
    write_parquet(path, &batch)?;
    sync(path)
}

/// Rejected rows as a synced Parquet file (the `dead_letters` columns).
fn write_bad(path: &Path, bad: &[RecordError]) -> Result<(), String> {
    write_parquet(path, &dead_letters_batch(bad))?;
    sync(path)
}

fn sync(path: &Path) -> Result<(), String> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("fsync {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: &str, retract: bool) -> Match {
        let mut m = Match::new(id, "g", "a", "b", 1.0, 0.25);
        // As decoded: a retraction carries only its identifying fields.
        if retract {
            m.retract = true;
        } else {
            m.context = Some("map-3".into());
            m.propensity = Some(0.5);
        }
        m
    }

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nashflow-state-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn epochs_round_trip_and_an_orphan_segment_is_ignored() {
        let d = dir("roundtrip");
        let (mut st, restored) = StateDir::open(&d).unwrap();
        assert!(restored.is_none(), "a new directory has nothing to resume");
        let bad = RecordError {
            source_name: "matches[1]".into(),
            row: 7,
            field: Some("payoff_i".into()),
            reason: "not a number".into(),
            raw: "{..}".into(),
        };
        let offsets: Offsets = [
            (("matches".to_string(), 0), 3),
            (("matches".to_string(), 1), 8),
        ]
        .into();
        let (a, b) = (m("x", false), m("x", true));
        let triggers: BTreeMap<String, Trigger> = [("g".to_string(), Trigger::default())].into();
        let progress = Progress {
            jobs: &[],
            triggers: &triggers,
            offsets: &offsets,
        };
        st.append(0, &[(&a, "matches[0]", 0)], &[], &progress)
            .unwrap();
        st.append(
            1,
            &[(&b, "matches[0]", 2)],
            std::slice::from_ref(&bad),
            &progress,
        )
        .unwrap();
        // A crash after writing epoch 2's segment but before its manifest.
        let orphan = m("y", false);
        write_parquet(&st.records_path(2), &records_batch([&orphan])).unwrap();
        drop(st);
        let (_, restored) = StateDir::open(&d).unwrap();
        let r = restored.expect("durable state");
        assert_eq!(r.epoch, 1);
        assert_eq!(r.offsets, offsets);
        assert_eq!(
            r.records,
            vec![
                (a, "matches[0]".to_string(), 0),
                (b, "matches[0]".to_string(), 2)
            ]
        );
        assert_eq!(r.bad, vec![bad]);
        assert_eq!(r.triggers, triggers);
    }

    #[test]
    fn compaction_replaces_segments_by_the_live_set() {
        let d = dir("compact");
        let (mut st, _) = StateDir::open(&d).unwrap();
        let offsets: Offsets = [(("t".to_string(), 0), 5)].into();
        let progress = Progress {
            jobs: &[],
            triggers: &BTreeMap::new(),
            offsets: &offsets,
        };
        let (x, y, z) = (m("x", false), m("y", false), m("z", false));
        st.append(0, &[(&x, "t[0]", 0), (&y, "t[0]", 1)], &[], &progress)
            .unwrap();
        let conflict = RecordError {
            source_name: "t[0]".into(),
            row: 2,
            field: Some("match_id".into()),
            reason: "conflict".into(),
            raw: "{}".into(),
        };
        // After epoch 1 only y is live (x was retracted); the conflict is a rejected row.
        st.compact(
            1,
            &[(&y, "t[0]", 1)],
            std::slice::from_ref(&conflict),
            &progress,
        )
        .unwrap();
        assert_eq!(st.segments(), 0);
        assert!(
            !st.records_path(0).exists(),
            "replaced segments are removed"
        );
        st.append(2, &[(&z, "t[0]", 4)], &[], &progress).unwrap();
        drop(st);
        let (st, restored) = StateDir::open(&d).unwrap();
        let r = restored.unwrap();
        assert_eq!(r.epoch, 2);
        assert_eq!(
            r.records,
            vec![(y, "t[0]".to_string(), 1), (z, "t[0]".to_string(), 4)]
        );
        assert_eq!(r.bad, vec![conflict]);
        assert_eq!(st.segments(), 1);
    }

    #[test]
    fn a_foreign_manifest_is_an_error_not_a_fresh_start() {
        let d = dir("foreign");
        fs::create_dir_all(&d).unwrap();
        fs::write(
            d.join(MANIFEST),
            r#"{"version": 99, "epoch": 0, "offsets": [], "segments": [], "jobs": []}"#,
        )
        .unwrap();
        let err = StateDir::open(&d).err().expect("refused");
        assert!(err.contains("version 99"), "{err}");
        fs::write(d.join(MANIFEST), "garbage").unwrap();
        assert!(StateDir::open(&d)
            .err()
            .unwrap()
            .contains("not a nashflow state manifest"));
    }
}
