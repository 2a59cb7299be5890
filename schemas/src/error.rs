//! Validation errors: every bad record is named by source, row and field, with a reason.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{source_name}: row {row}{}: {reason}", field.as_ref().map(|f| format!(", field `{f}`")).unwrap_or_default())]
pub struct RecordError {
    /// File path (or topic/partition, stream name).
    pub source_name: String,
    /// 1-based data row (header excluded); for JSONL, the line number.
    pub row: u64,
    pub field: Option<String>,
    pub reason: String,
    /// The offending record as text, for the dead-letter output.
    pub raw: String,
}

/// A whole file could not be read (missing, unknown format, unreadable header…).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {reason}")]
    Unreadable { path: String, reason: String },
}
