//! SQL over nashflow's tables with DataFusion (issue #5): `nashflow sql "QUERY" --data DIR`.
//!
//! Every `NAME.parquet` under `--data` (the tables `analyze --out` and `run --out` write) is a
//! table; with `--archive DIR` (written by `run --archive`), each table also has a
//! `NAME_history` over all of its epochs. SQL is read-only: only queries (SELECT / WITH /
//! VALUES / EXPLAIN) are accepted; DDL, DML, COPY and SET are refused before planning, and
//! DataFusion's own statement guards stay on as a second line. Results are capped at
//! `--max-rows` and queries at `--timeout-s`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use arrow::array::{Array, RecordBatch};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::options::ParquetReadOptions;
use datafusion::prelude::{SQLOptions, SessionContext};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use serde_json::{Map, Value};

use crate::cli::{SqlArgs, SqlFormat};

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_rows: usize,
    pub timeout: Duration,
}

/// The rows of a query, and whether `max_rows` cut them.
pub struct QueryResult {
    pub batches: Vec<RecordBatch>,
    pub truncated: bool,
}

impl QueryResult {
    pub fn rows(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

/// Refuses anything but a single query, naming what was sent.
pub fn check_read_only(sql: &str) -> Result<()> {
    let statements =
        Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| anyhow!("SQL syntax: {e}"))?;
    match statements.as_slice() {
        [Statement::Query(_)] | [Statement::Explain { .. }] => Ok(()),
        [] => bail!("empty SQL"),
        [s] => {
            let text = s.to_string();
            let kind: Vec<&str> = text.split_whitespace().take(2).collect();
            bail!(
                "SQL is read-only: only queries (SELECT, WITH, VALUES, EXPLAIN) are allowed, got `{}`",
                kind.join(" ")
            )
        }
        _ => bail!("one statement per request ({} given)", statements.len()),
    }
}

/// A session over the tables of a data directory (and an archive).
pub async fn catalog(data: Option<&Path>, archive: Option<&Path>) -> Result<SessionContext> {
    let ctx = SessionContext::new();
    if let Some(dir) = data {
        let mut found = 0;
        for entry in std::fs::read_dir(dir)
            .with_context(|| format!("the tables' directory {}", dir.display()))?
        {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "parquet") {
                let name = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_string();
                ctx.register_parquet(
                    &name,
                    path.to_string_lossy().as_ref(),
                    ParquetReadOptions::default(),
                )
                .await
                .with_context(|| format!("registering {}", path.display()))?;
                found += 1;
            }
        }
        if found == 0 {
            bail!(
                "{}: no .parquet tables (write them with `analyze --out` or `run --out`)",
                dir.display()
            );
        }
    }
    if let Some(dir) = archive {
        register_archive(&ctx, dir).await?;
    }
    Ok(ctx)
}

/// Registers `NAME_history` for every table of an archive written by `run --archive`, over
/// the segments that hold each epoch once (`nashflow_connectors::archive::live_segments`);
/// the tables carry their own `epoch` column.
pub async fn register_archive(ctx: &SessionContext, dir: &Path) -> Result<()> {
    let dir = std::path::absolute(dir).with_context(|| format!("--archive {}", dir.display()))?;
    let mut files: std::collections::BTreeMap<String, Vec<ListingTableUrl>> = Default::default();
    for segment in nashflow_connectors::archive::live_segments(&dir).map_err(anyhow::Error::msg)? {
        let seg = dir.join(segment.name());
        for f in std::fs::read_dir(&seg).with_context(|| seg.display().to_string())? {
            let p = f?.path();
            let Some(name) = p
                .file_stem()
                .and_then(|s| s.to_str())
                .filter(|_| p.extension().is_some_and(|e| e == "parquet"))
            else {
                continue;
            };
            let url = ListingTableUrl::parse(p.to_string_lossy())
                .with_context(|| p.display().to_string())?;
            files.entry(name.to_string()).or_default().push(url);
        }
    }
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    for (name, urls) in files {
        let table = format!("{name}_history");
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options.clone())
            .infer_schema(&ctx.state())
            .await
            .with_context(|| format!("registering {table}"))?;
        ctx.register_table(&table, Arc::new(ListingTable::try_new(config)?))
            .with_context(|| format!("registering {table}"))?;
    }
    Ok(())
}

/// The tables a session can query, in name order.
fn table_names(ctx: &SessionContext) -> Vec<String> {
    let mut names: Vec<String> = ctx
        .catalog_names()
        .into_iter()
        .filter_map(|c| ctx.catalog(&c))
        .flat_map(|c| {
            c.schema_names()
                .into_iter()
                .filter_map(move |s| c.schema(&s))
                .flat_map(|s| s.table_names())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Runs one read-only query under the limits.
pub async fn query(ctx: &SessionContext, sql: &str, limits: Limits) -> Result<QueryResult> {
    check_read_only(sql)?;
    let guards = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let run = async {
        let df = ctx.sql_with_options(sql, guards).await?;
        let df = df.limit(0, Some(limits.max_rows + 1))?;
        df.collect().await
    };
    let mut batches = tokio::time::timeout(limits.timeout, run)
        .await
        .map_err(|_| anyhow!("query exceeded the time limit of {:?}", limits.timeout))?
        .map_err(|e| {
            // A table that is not there: list the ones that are.
            if e.to_string().contains("not found") {
                anyhow!("{e} (tables: {})", table_names(ctx).join(", "))
            } else {
                anyhow!("{e}")
            }
        })?;
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    let truncated = total > limits.max_rows;
    if truncated {
        let mut keep = limits.max_rows;
        for b in batches.iter_mut() {
            let take = keep.min(b.num_rows());
            *b = b.slice(0, take);
            keep -= take;
        }
        batches.retain(|b| b.num_rows() > 0);
    }
    Ok(QueryResult { batches, truncated })
}

fn cell_json(col: &dyn Array, row: usize, fmt: &ArrayFormatter) -> Value {
    use arrow::array::AsArray;
    use arrow::datatypes::*;
    if col.is_null(row) {
        return Value::Null;
    }
    match col.data_type() {
        DataType::Boolean => Value::Bool(col.as_boolean().value(row)),
        DataType::Float64 => crate::report::num(col.as_primitive::<Float64Type>().value(row)),
        DataType::Float32 => {
            crate::report::num(col.as_primitive::<Float32Type>().value(row) as f64)
        }
        DataType::Int64 => col.as_primitive::<Int64Type>().value(row).into(),
        DataType::Int32 => col.as_primitive::<Int32Type>().value(row).into(),
        DataType::UInt64 => col.as_primitive::<UInt64Type>().value(row).into(),
        DataType::UInt32 => col.as_primitive::<UInt32Type>().value(row).into(),
        _ => Value::String(fmt.value(row).to_string()),
    }
}

/// One display formatter per column of `b`.
fn formatters<'a>(
    b: &'a RecordBatch,
    opts: &'a FormatOptions<'a>,
) -> Result<Vec<ArrayFormatter<'a>>, arrow::error::ArrowError> {
    b.columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), opts))
        .collect()
}

/// Rows as JSON objects (numbers stay numbers; non-finite floats are null).
pub fn to_json(batches: &[RecordBatch]) -> Result<Vec<Value>> {
    let opts = FormatOptions::default();
    let mut rows = Vec::new();
    for b in batches {
        let schema = b.schema();
        let fmts = formatters(b, &opts)?;
        for r in 0..b.num_rows() {
            let mut obj = Map::new();
            for (k, field) in schema.fields().iter().enumerate() {
                obj.insert(
                    field.name().clone(),
                    cell_json(b.column(k).as_ref(), r, &fmts[k]),
                );
            }
            rows.push(Value::Object(obj));
        }
    }
    Ok(rows)
}

/// RFC 4180 CSV with a header row.
pub fn to_csv(batches: &[RecordBatch]) -> Result<String> {
    let mut out = String::new();
    let quote = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let opts = FormatOptions::default().with_null("");
    if let Some(b) = batches.first() {
        let header: Vec<String> = b
            .schema()
            .fields()
            .iter()
            .map(|f| quote(f.name()))
            .collect();
        out.push_str(&header.join(","));
        out.push('\n');
    }
    for b in batches {
        let fmts = formatters(b, &opts)?;
        for r in 0..b.num_rows() {
            let cells: Vec<String> = fmts
                .iter()
                .map(|f| quote(&f.value(r).to_string()))
                .collect();
            out.push_str(&cells.join(","));
            out.push('\n');
        }
    }
    Ok(out)
}

/// Sends the query to a running server's `POST /api/sql` and reads the Arrow IPC answer.
fn remote(url: &str, sql: &str) -> Result<QueryResult> {
    use std::io::{Read, Write};
    let host = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("--server must be http://HOST:PORT, got {url}"))?
        .trim_end_matches('/');
    let body = serde_json::json!({ "sql": sql }).to_string();
    let mut stream =
        std::net::TcpStream::connect(host).with_context(|| format!("connecting to {url}"))?;
    write!(
        stream,
        "POST /api/sql HTTP/1.1\r\nHost: {host}\r\nAccept: application/vnd.apache.arrow.stream\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("{url}: malformed HTTP response"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let payload = &raw[split + 4..];
    let status = head.split_whitespace().nth(1).unwrap_or("").to_string();
    if status != "200" {
        let reason = serde_json::from_slice::<Value>(payload)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(payload).to_string());
        bail!("{url} answered {status}: {reason}");
    }
    let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(payload), None)?;
    Ok(QueryResult {
        batches: reader.collect::<Result<Vec<_>, _>>()?,
        truncated: head.contains("x-nashflow-truncated: true"),
    })
}

pub fn run(args: &SqlArgs) -> Result<()> {
    let (sql, data) = args.query_and_data().map_err(anyhow::Error::msg)?;
    let result = if let Some(url) = &args.server {
        remote(url, sql)?
    } else {
        if data.is_none() && args.archive.is_none() {
            bail!("give the tables' directory (`nashflow sql QUERY DIR`, tables from `analyze --out` / `run --out`), --archive DIR or --server URL");
        }
        let limits = Limits {
            max_rows: args.max_rows,
            timeout: Duration::from_secs_f64(args.timeout_s),
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let ctx = catalog(data, args.archive.as_deref()).await?;
            query(&ctx, sql, limits).await
        })?
    };
    match args.format {
        SqlFormat::Table => println!(
            "{}",
            arrow::util::pretty::pretty_format_batches(&result.batches)?
        ),
        SqlFormat::Csv => print!("{}", to_csv(&result.batches)?),
        SqlFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&result.batches)?)?
        ),
    }
    if result.truncated {
        eprintln!("note: result cut at {} rows (--max-rows)", args.max_rows);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_queries_pass() {
        for ok in [
            "SELECT 1",
            "WITH a AS (SELECT 1) SELECT * FROM a",
            "EXPLAIN SELECT 1",
            "VALUES (1)",
        ] {
            check_read_only(ok).unwrap();
        }
        for bad in [
            "CREATE TABLE t AS SELECT 1",
            "DROP TABLE policies",
            "INSERT INTO policies VALUES (1)",
            "COPY policies TO 'x.csv'",
            "SET datafusion.execution.batch_size = 1",
        ] {
            let e = check_read_only(bad).unwrap_err().to_string();
            assert!(
                e.contains("read-only") || e.contains("syntax"),
                "{bad}: {e}"
            );
        }
        assert!(check_read_only("SELECT 1; SELECT 2")
            .unwrap_err()
            .to_string()
            .contains("one statement"));
    }
}
