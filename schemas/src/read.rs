//! File readers: CSV, JSON Lines (or a JSON array) and Parquet, chosen by extension.
//! Every reader yields rows of named [`RawValue`]s into [`decode_row`]; bad rows become
//! [`RecordError`]s and the good rows around them are kept.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatchReader};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, TimeUnit,
    UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::decode::{decode_row, RawValue, KNOWN_COLUMNS};
use crate::error::{FileError, RecordError};
use crate::record::Match;

/// What one file yielded.
#[derive(Debug, Default)]
pub struct ReadOutcome {
    /// Good records with their 1-based row.
    pub matches: Vec<(u64, Match)>,
    pub errors: Vec<RecordError>,
}

impl ReadOutcome {
    /// The collecting [`RowSink`]: keeps every row and never stops the reader.
    fn keep(&mut self, r: Result<(u64, Match), RecordError>) -> bool {
        match r {
            Ok(x) => self.matches.push(x),
            Err(e) => self.errors.push(e),
        }
        true
    }
}

/// Where a reader's rows go, in file order: good records with their 1-based row, and bad
/// rows. Returning false stops the reader (the receiver is gone).
pub type RowSink<'a> = dyn FnMut(Result<(u64, Match), RecordError>) -> bool + 'a;

/// A reader's output: the sink, and the file's columns once known.
struct Out<'s, 'a> {
    sink: &'s mut RowSink<'a>,
    columns: Option<Vec<String>>,
}

impl<'s, 'a> Out<'s, 'a> {
    fn new(sink: &'s mut RowSink<'a>) -> Self {
        Out {
            sink,
            columns: None,
        }
    }

    /// A decoded row; false when the sink asks to stop.
    fn row(&mut self, row: u64, r: Result<Match, RecordError>) -> bool {
        match r {
            Ok(m) => (self.sink)(Ok((row, m))),
            Err(e) => self.bad(e),
        }
    }

    /// A bad row. In a file without one of the columns every match needs (a header mistake,
    /// not bad rows), the rows it fails say which column is absent and which the file has;
    /// rows that need no such column (retractions) still decode.
    fn bad(&mut self, mut e: RecordError) -> bool {
        const NEEDED: [&str; 4] = ["policy_i", "policy_j", "payoff_i", "payoff_j"];
        if let (Some(columns), Some(f)) = (&self.columns, e.field.as_deref()) {
            if NEEDED.contains(&f) && !columns.iter().any(|c| c == f) {
                e.reason = format!(
                    "the file has no `{f}` column (it has: {})",
                    columns.join(", ")
                );
            }
        }
        (self.sink)(Err(e))
    }
}

/// Runs a reader into a [`ReadOutcome`]; also returns why it stopped early, if it did.
fn collect(read: impl FnOnce(&mut Out) -> Option<String>) -> (ReadOutcome, Option<String>) {
    let mut outcome = ReadOutcome::default();
    let broke = read(&mut Out::new(&mut |r| outcome.keep(r)));
    (outcome, broke)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    JsonLines,
    Parquet,
}

impl Format {
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" | "json" => Some(Format::JsonLines),
            "parquet" | "pq" => Some(Format::Parquet),
            _ => None,
        }
    }
}

fn unreadable(path: &Path, reason: impl ToString) -> FileError {
    FileError::Unreadable {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Reads a match log. Rows without `match_id` get `FILE:ROW` (FILE as given). Only a file
/// that cannot be opened (missing, unknown type, no permission) is an `Err`: content that
/// cannot be read, as a whole or past some point, is one [`RecordError::file`] among the
/// outcome's errors, after the rows read before it.
pub fn read_file(path: &Path) -> Result<ReadOutcome, FileError> {
    read_file_reporting(path, &mut |_, _| {})
}

/// [`read_file`], calling `report(done, total)` as it goes (about every MiB; in bytes of
/// the file, for Parquet estimated from the rows decoded), for a progress bar.
pub fn read_file_reporting(
    path: &Path,
    report: &mut dyn FnMut(u64, u64),
) -> Result<ReadOutcome, FileError> {
    let mut outcome = ReadOutcome::default();
    stream_file(path, report, &mut |r| outcome.keep(r))?;
    Ok(outcome)
}

/// [`read_file_reporting`], handing each row to `sink` as it is decoded instead of
/// collecting them (a file's last error may be the one for the part that could not be
/// read). Stops early when `sink` returns false.
pub fn stream_file(
    path: &Path,
    report: &mut dyn FnMut(u64, u64),
    sink: &mut RowSink,
) -> Result<(), FileError> {
    // Opened first: a path that is not there is that, whatever its name says.
    let file = File::open(path).map_err(|e| unreadable(path, e))?;
    let format = Format::from_path(path).ok_or_else(|| {
        unreadable(
            path,
            "unknown file type; expected .csv, .jsonl/.ndjson/.json or .parquet",
        )
    })?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let name = path.display().to_string();
    let mut out = Out::new(sink);
    let broke = match format {
        Format::Csv => csv_rows(&name, Counting::new(file, total, report), &mut out),
        Format::JsonLines => json_rows(
            &name,
            BufReader::new(Counting::new(file, total, report)),
            &mut out,
        ),
        Format::Parquet => parquet_rows(
            &name,
            file,
            &mut |rows, of| report(rows.saturating_mul(total) / of.max(1), total),
            &mut out,
        ),
    };
    if let Some(reason) = broke {
        (out.sink)(Err(RecordError::file(&name, reason)));
    }
    Ok(())
}

/// A reader that reports the bytes read through it, every [`Counting::EVERY`] bytes.
struct Counting<'a, R> {
    inner: R,
    read: u64,
    reported: u64,
    total: u64,
    report: &'a mut dyn FnMut(u64, u64),
}

impl<'a, R> Counting<'a, R> {
    const EVERY: u64 = 1 << 20;

    fn new(inner: R, total: u64, report: &'a mut dyn FnMut(u64, u64)) -> Self {
        Counting {
            inner,
            read: 0,
            reported: 0,
            total,
            report,
        }
    }
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read - self.reported >= Self::EVERY || (n == 0 && self.read > self.reported) {
            (self.report)(self.read, self.total);
            self.reported = self.read;
        }
        Ok(n)
    }
}

/// The strict form of a reader: any part of the input it could not read fails it.
fn whole((out, broke): (ReadOutcome, Option<String>)) -> Result<ReadOutcome, String> {
    match broke {
        None => Ok(out),
        Some(reason) => Err(reason),
    }
}

pub fn read_csv(source: &str, input: impl Read) -> Result<ReadOutcome, String> {
    whole(collect(|out| csv_rows(source, input, out)))
}

/// Why a reader stopped early (`None`: it read the whole input, or its sink stopped it).
type Broke = Option<String>;

fn csv_rows(source: &str, input: impl Read, out: &mut Out) -> Broke {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let headers: Vec<String> = match rdr.headers() {
        Ok(h) => h.iter().map(|h| h.trim().to_string()).collect(),
        Err(e) => return Some(format!("cannot read CSV header: {e}")),
    };
    out.columns = Some(headers.clone());
    for (k, rec) in rdr.records().enumerate() {
        let row = k as u64 + 1;
        let more = match rec {
            Ok(rec) if rec.len() != headers.len() => out.bad(RecordError {
                source_name: source.into(),
                row,
                field: None,
                reason: format!("{} fields, but the header has {}", rec.len(), headers.len()),
                raw: rec.iter().collect::<Vec<_>>().join(","),
            }),
            Ok(rec) => {
                let fields: Vec<(&str, RawValue)> = headers
                    .iter()
                    .zip(rec.iter())
                    .filter(|(h, _)| KNOWN_COLUMNS.contains(&h.as_str()))
                    .map(|(h, v)| {
                        let v = if v.is_empty() {
                            RawValue::Null
                        } else {
                            RawValue::Str(v.to_string())
                        };
                        (h.as_str(), v)
                    })
                    .collect();
                out.row(
                    row,
                    decode_row(source, row, &fields, || format!("{source}:{row}")),
                )
            }
            Err(e) => out.bad(RecordError {
                source_name: source.into(),
                row,
                field: None,
                reason: format!("malformed CSV: {e}"),
                raw: String::new(),
            }),
        };
        if !more {
            break;
        }
    }
    None
}

pub(crate) fn json_raw(v: &serde_json::Value) -> RawValue {
    use serde_json::Value;
    match v {
        Value::Null => RawValue::Null,
        Value::Bool(b) => RawValue::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                RawValue::Int(i)
            } else if let Some(u) = n.as_u64() {
                RawValue::UInt(u)
            } else {
                RawValue::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => RawValue::Str(s.clone()),
        Value::Array(_) => RawValue::Unsupported("array".into()),
        Value::Object(_) => RawValue::Unsupported("object".into()),
    }
}

/// Decodes one JSON object (the text form of a record).
pub fn decode_json(
    source: &str,
    row: u64,
    text: &str,
    derived_id: impl FnOnce() -> String,
) -> Result<Match, RecordError> {
    let bad = |reason: String| RecordError {
        source_name: source.into(),
        row,
        field: None,
        reason,
        raw: text.to_string(),
    };
    // The direct route handles every object; anything else takes the `Value` route, which
    // words the error.
    if let Ok(fields) = serde_json::from_str::<crate::json_fields::Fields>(text) {
        return decode_row(source, row, &fields.0, derived_id).map_err(|mut e| {
            e.raw = text.to_string();
            e
        });
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    decode_json_value(source, row, &value, derived_id).map_err(|mut e| {
        e.raw = text.to_string();
        e
    })
}

fn decode_json_value(
    source: &str,
    row: u64,
    value: &serde_json::Value,
    derived_id: impl FnOnce() -> String,
) -> Result<Match, RecordError> {
    let obj = value.as_object().ok_or_else(|| RecordError {
        source_name: source.into(),
        row,
        field: None,
        reason: "expected a JSON object".into(),
        raw: value.to_string(),
    })?;
    let fields: Vec<(&str, RawValue)> = obj
        .iter()
        .filter(|(k, _)| KNOWN_COLUMNS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), json_raw(v)))
        .collect();
    decode_row(source, row, &fields, derived_id)
}

/// JSON Lines (one object per line; blank lines skipped), or a single JSON array of objects
/// (exactly one array: JSON Lines whose first line is an array keep their other lines).
/// A line that is not UTF-8 is a bad row; the lines around it are kept.
pub fn read_json(source: &str, input: impl BufRead) -> Result<ReadOutcome, String> {
    whole(collect(|out| json_rows(source, input, out)))
}

fn json_rows(source: &str, mut input: impl BufRead, out: &mut Out) -> Broke {
    // A byte-order mark (some Windows tools write one) is not part of the first record.
    match input.fill_buf() {
        Ok(b) if b.starts_with(b"\xEF\xBB\xBF") => input.consume(3),
        Ok(_) => {}
        Err(e) => return Some(format!("read failed: {e}")),
    }
    let first = match input.fill_buf() {
        Ok(b) => b,
        Err(e) => return Some(format!("read failed: {e}")),
    };
    let is_array = first
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'[');
    if is_array {
        let mut text = String::new();
        if let Err(e) = input.read_to_string(&mut text) {
            return Some(format!("read failed: {e}"));
        }
        // One array and nothing after it is an array file; an array followed by more values
        // is JSON Lines whose first line is a bad row (the lines after it are kept).
        let mut values =
            serde_json::Deserializer::from_str(&text).into_iter::<Vec<serde_json::Value>>();
        let values = match (values.next(), values.next()) {
            (Some(Ok(v)), None) => v,
            (Some(Ok(_)), Some(_)) => return json_lines(source, text.as_bytes(), out),
            // A broken first line of JSON Lines, when the next line is a whole record.
            (Some(Err(_)), _) if second_line_is_an_object(&text) => {
                return json_lines(source, text.as_bytes(), out)
            }
            (Some(Err(e)), _) => return Some(format!("invalid JSON array: {e}")),
            (None, _) => Vec::new(),
        };
        for (k, v) in values.iter().enumerate() {
            let row = k as u64 + 1;
            if !out.row(
                row,
                decode_json_value(source, row, v, || format!("{source}:{row}")),
            ) {
                break;
            }
        }
        return None;
    }
    json_lines(source, input, out)
}

/// True when the second non-blank line is a JSON object on its own: the text is JSON Lines
/// (in a JSON array the lines between the brackets end in commas or are fragments).
fn second_line_is_an_object(text: &str) -> bool {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .nth(1)
        .is_some_and(|l| serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v.is_object()))
}

/// JSON Lines as they arrive (stdin, say), one row per line: a line that is not UTF-8 is a
/// bad row, blank lines are skipped. Returns why it stopped early (a failed read), if so.
pub fn stream_json_lines(source: &str, input: impl BufRead, sink: &mut RowSink) -> Option<String> {
    json_lines(source, input, &mut Out::new(sink))
}

fn json_lines(source: &str, input: impl BufRead, out: &mut Out) -> Broke {
    for (k, line) in input.split(b'\n').enumerate() {
        let row = k as u64 + 1;
        let mut bytes = match line {
            Ok(b) => b,
            Err(e) => return Some(format!("read failed after line {k}: {e}")),
        };
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        let line = match std::str::from_utf8(&bytes) {
            Ok(l) => l,
            Err(e) => {
                if !out.bad(not_utf8(source, row, &bytes, e)) {
                    break;
                }
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        if !out.row(
            row,
            decode_json(source, row, line, || format!("{source}:{row}")),
        ) {
            break;
        }
    }
    None
}

/// A line whose bytes are not UTF-8, kept (lossily) for the dead-letter output.
fn not_utf8(source: &str, row: u64, bytes: &[u8], e: std::str::Utf8Error) -> RecordError {
    RecordError {
        source_name: source.into(),
        row,
        field: None,
        reason: format!("not valid UTF-8 (byte {})", e.valid_up_to()),
        raw: String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Arrow column → per-row raw values, after casting the types we can read exactly.
fn normalize(col: &ArrayRef) -> ArrayRef {
    let target = match col.data_type() {
        DataType::Dictionary(_, _) | DataType::LargeUtf8 | DataType::Utf8View => {
            Some(DataType::Utf8)
        }
        DataType::Decimal128(_, _) | DataType::Decimal256(_, _) | DataType::Float16 => {
            Some(DataType::Float64)
        }
        DataType::Timestamp(_, _) | DataType::Date64 | DataType::Date32 => {
            Some(DataType::Timestamp(TimeUnit::Millisecond, None))
        }
        _ => None,
    };
    let casted = target.and_then(|t| arrow::compute::cast(col, &t).ok());
    match casted {
        Some(c) if matches!(c.data_type(), DataType::Timestamp(_, _)) => {
            arrow::compute::cast(&c, &DataType::Int64).unwrap_or(c)
        }
        Some(c) => c,
        None => col.clone(),
    }
}

fn raw_at(col: &dyn Array, i: usize) -> RawValue {
    if col.is_null(i) {
        return RawValue::Null;
    }
    match col.data_type() {
        DataType::Null => RawValue::Null,
        DataType::Boolean => RawValue::Bool(col.as_boolean().value(i)),
        DataType::Int8 => RawValue::Int(col.as_primitive::<Int8Type>().value(i) as i64),
        DataType::Int16 => RawValue::Int(col.as_primitive::<Int16Type>().value(i) as i64),
        DataType::Int32 => RawValue::Int(col.as_primitive::<Int32Type>().value(i) as i64),
        DataType::Int64 => RawValue::Int(col.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => RawValue::UInt(col.as_primitive::<UInt8Type>().value(i) as u64),
        DataType::UInt16 => RawValue::UInt(col.as_primitive::<UInt16Type>().value(i) as u64),
        DataType::UInt32 => RawValue::UInt(col.as_primitive::<UInt32Type>().value(i) as u64),
        DataType::UInt64 => RawValue::UInt(col.as_primitive::<UInt64Type>().value(i)),
        DataType::Float32 => RawValue::Float(col.as_primitive::<Float32Type>().value(i) as f64),
        DataType::Float64 => RawValue::Float(col.as_primitive::<Float64Type>().value(i)),
        DataType::Utf8 => RawValue::Str(col.as_string::<i32>().value(i).to_string()),
        other => RawValue::Unsupported(other.to_string()),
    }
}

pub fn read_parquet(source: &str, file: File) -> Result<ReadOutcome, String> {
    whole(collect(|out| {
        parquet_rows(source, file, &mut |_, _| {}, out)
    }))
}

/// Parquet rows, calling `report(rows decoded, rows in the file)` after each batch.
fn parquet_rows(
    source: &str,
    file: File,
    report: &mut dyn FnMut(u64, u64),
    out: &mut Out,
) -> Broke {
    let (reader, rows_in_file) =
        match ParquetRecordBatchReaderBuilder::try_new(file).and_then(|b| {
            let rows = b.metadata().file_metadata().num_rows().max(0) as u64;
            b.build().map(|r| (r, rows))
        }) {
            Ok(r) => r,
            Err(e) => return Some(format!("not a readable Parquet file: {e}")),
        };
    let mut row = 0u64;
    let columns: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    out.columns = Some(columns);
    for batch in reader {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => return Some(format!("corrupt Parquet data after row {row}: {e}")),
        };
        let schema = batch.schema();
        let cols: Vec<(&str, ArrayRef)> = schema
            .fields()
            .iter()
            .zip(batch.columns())
            .filter(|(f, _)| KNOWN_COLUMNS.contains(&f.name().as_str()))
            .map(|(f, c)| (f.name().as_str(), normalize(c)))
            .collect();
        for i in 0..batch.num_rows() {
            row += 1;
            let fields: Vec<(&str, RawValue)> = cols
                .iter()
                .map(|(n, c)| (*n, raw_at(c.as_ref(), i)))
                .collect();
            if !out.row(
                row,
                decode_row(source, row, &fields, || format!("{source}:{row}")),
            ) {
                return None;
            }
        }
        report(row, rows_in_file);
    }
    None
}
