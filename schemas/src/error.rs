//! Validation errors: every bad record is named by source, row and field, with a reason.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{source_name}: {}{reason}", match (row, field) {
    (0, _) => String::new(),
    (r, None) => format!("row {r}: "),
    (r, Some(f)) => format!("row {r}, field `{f}`: "),
})]
pub struct RecordError {
    /// File path (or topic/partition, stream name).
    pub source_name: String,
    /// 1-based data row (header excluded); for JSONL, the line number. 0: the file as a
    /// whole, or what is left of it after a point it could not be read past (see
    /// [`RecordError::file`]).
    pub row: u64,
    pub field: Option<String>,
    pub reason: String,
    /// The offending record as text, for the dead-letter output.
    pub raw: String,
}

impl RecordError {
    /// A file whose content cannot be read, as a whole or past some point (a corrupt
    /// Parquet footer, an unreadable CSV header): row 0, no field. The rows read before
    /// that point are kept.
    pub fn file(source: &str, reason: impl Into<String>) -> RecordError {
        RecordError {
            source_name: source.into(),
            row: 0,
            field: None,
            reason: reason.into(),
            raw: String::new(),
        }
    }
}

/// A file could not be opened at all: missing, unknown format, no permission. (Content it
/// cannot read is a [`RecordError::file`] instead.)
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {reason}")]
    Unreadable { path: String, reason: String },
}
