//! Arrow schemas and Parquet I/O for matches and dead letters.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::RecordError;
use crate::record::Match;

/// The `matches` table: one column per Match field (DESIGN §4).
pub fn match_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("match_id", DataType::Utf8, false),
        Field::new("ts", DataType::Int64, true),
        Field::new("game", DataType::Utf8, false),
        Field::new("policy_i", DataType::Utf8, false),
        Field::new("policy_j", DataType::Utf8, false),
        Field::new("payoff_i", DataType::Float64, false),
        Field::new("payoff_j", DataType::Float64, false),
        Field::new("batna_i", DataType::Float64, true),
        Field::new("batna_j", DataType::Float64, true),
        Field::new("agreement", DataType::Boolean, true),
        Field::new("ef1", DataType::Boolean, true),
        Field::new("context", DataType::Utf8, true),
        Field::new("propensity", DataType::Float64, true),
        Field::new("source", DataType::Utf8, true),
        Field::new("seed", DataType::UInt64, true),
    ]))
}

pub fn matches_batch<'a>(matches: impl IntoIterator<Item = &'a Match>) -> RecordBatch {
    let ms: Vec<&Match> = matches.into_iter().collect();
    let text = |f: fn(&Match) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(ms.iter().map(|m| f(m))))
    };
    let opt_text = |f: fn(&Match) -> Option<&str>| -> ArrayRef {
        Arc::new(ms.iter().map(|m| f(m)).collect::<StringArray>())
    };
    let num = |f: fn(&Match) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(ms.iter().map(|m| f(m))))
    };
    let opt_num = |f: fn(&Match) -> Option<f64>| -> ArrayRef {
        Arc::new(ms.iter().map(|m| f(m)).collect::<Float64Array>())
    };
    let opt_bool = |f: fn(&Match) -> Option<bool>| -> ArrayRef {
        Arc::new(ms.iter().map(|m| f(m)).collect::<BooleanArray>())
    };
    let columns: Vec<ArrayRef> = vec![
        text(|m| &m.match_id),
        Arc::new(ms.iter().map(|m| m.ts).collect::<Int64Array>()),
        text(|m| &m.game),
        text(|m| &m.policy_i),
        text(|m| &m.policy_j),
        num(|m| m.payoff_i),
        num(|m| m.payoff_j),
        opt_num(|m| m.batna_i),
        opt_num(|m| m.batna_j),
        opt_bool(|m| m.agreement),
        opt_bool(|m| m.ef1),
        opt_text(|m| m.context.as_deref()),
        opt_num(|m| m.propensity),
        opt_text(|m| m.source.as_deref()),
        Arc::new(ms.iter().map(|m| m.seed).collect::<UInt64Array>()),
    ];
    RecordBatch::try_new(match_schema(), columns).expect("columns follow match_schema")
}

/// Incoming records as received (the archive): the `matches` columns plus `retract`.
pub fn records_batch<'a>(records: impl IntoIterator<Item = &'a Match>) -> RecordBatch {
    let rs: Vec<&Match> = records.into_iter().collect();
    let base = matches_batch(rs.iter().copied());
    let retract: ArrayRef = Arc::new(BooleanArray::from_iter(rs.iter().map(|m| Some(m.retract))));
    append_columns(
        &base,
        vec![(Field::new("retract", DataType::Boolean, false), retract)],
    )
}

/// `batch` with `extra` columns appended (same row count).
pub fn append_columns(batch: &RecordBatch, extra: Vec<(Field, ArrayRef)>) -> RecordBatch {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    let mut columns = batch.columns().to_vec();
    for (f, c) in extra {
        fields.push(f);
        columns.push(c);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("columns follow schema")
}

/// The `dead_letters` table.
pub fn dead_letter_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("row", DataType::UInt64, false),
        Field::new("field", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, false),
        Field::new("raw", DataType::Utf8, false),
    ]))
}

pub fn dead_letters_batch(errors: &[RecordError]) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            errors.iter().map(|e| &e.source_name),
        )),
        Arc::new(UInt64Array::from_iter_values(errors.iter().map(|e| e.row))),
        Arc::new(
            errors
                .iter()
                .map(|e| e.field.as_deref())
                .collect::<StringArray>(),
        ),
        Arc::new(StringArray::from_iter_values(
            errors.iter().map(|e| &e.reason),
        )),
        Arc::new(StringArray::from_iter_values(errors.iter().map(|e| &e.raw))),
    ];
    RecordBatch::try_new(dead_letter_schema(), columns).expect("columns follow schema")
}

/// Writes one batch as a Snappy-compressed Parquet file.
pub fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<(), String> {
    let mut w = parquet_writer(path, batch.schema())?;
    w.write(batch)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    w.close().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

/// A Parquet file at `path` for batches of `schema`, with nashflow's writer settings (Snappy),
/// to be written batch by batch and closed.
pub fn parquet_writer(path: &Path, schema: SchemaRef) -> Result<ArrowWriter<File>, String> {
    let file = File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads every batch of a Parquet file (for tests and tools).
pub fn read_parquet_batches(path: &Path) -> Result<Vec<RecordBatch>, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))
}
