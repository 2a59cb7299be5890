//! Readers and validation: bad rows are named (source, row, field, reason) and skipped, good
//! rows around them are kept.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, DictionaryArray, Float32Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::Int8Type;
use nashflow_schemas::arrow_io::{matches_batch, read_parquet_batches, write_parquet};
use nashflow_schemas::read::{read_csv, read_json};
use nashflow_schemas::{read_file, Layout, Ledger, Match, Outcome, ReadOutcome};

/// The good records' ids, in order.
fn ids(out: &ReadOutcome) -> Vec<&str> {
    out.matches
        .iter()
        .map(|(_, m)| m.match_id.as_str())
        .collect()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nashflow-schemas-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn csv_good_and_bad_rows() {
    let text = "match_id,game,policy_i,policy_j,payoff_i,payoff_j,agreement,ef1,propensity,extra\n\
                a,g,x,y,1.5,0.5,1,0,0.5,whatever\n\
                b,g,x,,1,0,,,,\n\
                c,g,x,y,nan,0,,,,\n\
                d,g,x,y,1,0,maybe,,,\n\
                e,g,x,y,1,0,,,1.5,\n\
                f,g,y,x,2,3,true,TRUE,1,\n";
    let out = read_csv("log.csv", text.as_bytes()).unwrap();
    let ids = ids(&out);
    assert_eq!(ids, vec!["a", "f"]);
    assert_eq!(out.matches[1].0, 6, "row numbers are kept for good rows");
    let a = &out.matches[0].1;
    assert_eq!(
        (a.agreement, a.ef1, a.propensity),
        (Some(true), Some(false), Some(0.5))
    );
    let errs: Vec<(u64, Option<&str>)> = out
        .errors
        .iter()
        .map(|e| (e.row, e.field.as_deref()))
        .collect();
    assert_eq!(
        errs,
        vec![
            (2, Some("policy_j")),
            (3, Some("payoff_i")),
            (4, Some("agreement")),
            (5, Some("propensity"))
        ]
    );
    let msg = out.errors[1].to_string();
    assert!(
        msg.starts_with("log.csv: row 3, field `payoff_i`: non-finite"),
        "{msg}"
    );
    assert!(out.errors[3].reason.contains("outside (0, 1]"));
    assert!(
        !out.errors[0].raw.is_empty(),
        "the dead letter keeps the record"
    );
}

#[test]
fn csv_without_match_id_gets_derived_ids_and_default_game() {
    let out = read_csv(
        "dir/egta.csv",
        "policy_i,policy_j,payoff_i,payoff_j\na,b,1,2\nb,a,2,1\n".as_bytes(),
    )
    .unwrap();
    let ids = ids(&out);
    assert_eq!(ids, vec!["dir/egta.csv:1", "dir/egta.csv:2"]);
    assert_eq!(out.matches[0].1.game, "default");
}

#[test]
fn empty_or_null_text_counts_as_missing() {
    // A file with a match_id column whose value is empty or null in some rows: those rows get
    // FILE:ROW ids as a file without the column does; names are trimmed; an empty game is the
    // default one.
    let text = r#"{"match_id":null,"policy_i":" a ","policy_j":"b","payoff_i":1,"payoff_j":0}
{"match_id":"  ","game":"","policy_i":"a","policy_j":"b","payoff_i":1,"payoff_j":0}
{"match_id":"x","game":"g","policy_i":"a","policy_j":"b","payoff_i":1,"payoff_j":0}
"#;
    let out = read_json("l.jsonl", text.as_bytes()).unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(ids(&out), vec!["l.jsonl:1", "l.jsonl:2", "x"]);
    let m: Vec<&Match> = out.matches.iter().map(|(_, m)| m).collect();
    assert_eq!(m[0].policy_i, "a");
    assert_eq!((m[1].game.as_str(), m[2].game.as_str()), ("default", "g"));
}

#[test]
fn csv_ragged_row_is_reported() {
    let out = read_csv(
        "r.csv",
        "policy_i,policy_j,payoff_i,payoff_j\na,b,1\na,b,1,2\n".as_bytes(),
    )
    .unwrap();
    assert_eq!(out.matches.len(), 1);
    assert!(out.errors[0].reason.contains("3 fields"));
}

#[test]
fn jsonl_types_retractions_and_errors() {
    let text = r#"{"match_id":"1","policy_i":"a","policy_j":"b","payoff_i":1,"payoff_j":-1,"context":7,"ts":1700000000000,"seed":3}

{"match_id":"1","retract":true}
{"match_id":"2","policy_i":"a","policy_j":"b","payoff_i":"x","payoff_j":0}
not json
{"match_id":"3","policy_i":"a","policy_j":"b","payoff_i":1,"payoff_j":0,"ef1":[1]}
{"match_id":"4","policy_i":"a","policy_j":"b","payoff_i":1,"payoff_j":0,"diff":-1}
[1,2]
"#;
    let out = read_json("s.jsonl", text.as_bytes()).unwrap();
    let first = &out.matches[0].1;
    assert_eq!(
        (first.context.as_deref(), first.ts, first.seed),
        (Some("7"), Some(1_700_000_000_000), Some(3))
    );
    assert!(out.matches[1].1.retract);
    assert_eq!(out.matches[1].0, 3, "blank lines keep line numbering");
    assert!(out.matches[2].1.retract, "diff = -1 is a retraction");
    let errs: Vec<(u64, Option<&str>)> = out
        .errors
        .iter()
        .map(|e| (e.row, e.field.as_deref()))
        .collect();
    assert_eq!(
        errs,
        vec![
            (4, Some("payoff_i")),
            (5, None),
            (6, Some("ef1")),
            (8, None)
        ]
    );
    assert!(out.errors[1].reason.starts_with("invalid JSON"));
    assert!(out.errors[2].reason.contains("unknown column type array"));
}

/// Names and ids given as JSON numbers are their digits; numbers beyond 64 bits stay distinct
/// (they used to saturate to i64::MAX, merging different match ids).
#[test]
fn numeric_ids_and_names_keep_their_digits() {
    let text = r#"{"match_id":18446744073709551616,"policy_i":7,"policy_j":2.0,"payoff_i":1,"payoff_j":0}
{"match_id":36893488147419103232,"policy_i":-0.0,"policy_j":18446744073709551615,"payoff_i":1,"payoff_j":0}
{"match_id":-1e308,"policy_i":1e21,"policy_j":123456789012345670000,"payoff_i":1,"payoff_j":0}
"#;
    let out = read_json("n.jsonl", text.as_bytes()).unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let got: Vec<(&str, &str, &str)> = out
        .matches
        .iter()
        .map(|(_, m)| {
            (
                m.match_id.as_str(),
                m.policy_i.as_str(),
                m.policy_j.as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("18446744073709552000", "7", "2"),
            ("36893488147419103000", "0", "18446744073709551615"),
            ("-1e308", "1e21", "123456789012345670000")
        ]
    );
}

/// A seed spans all 64 bits (the simulator writes such seeds), in JSON, CSV and Parquet.
#[test]
fn seeds_span_64_bits() {
    let text = r#"{"match_id":"a","policy_i":"x","policy_j":"y","payoff_i":1,"payoff_j":0,"seed":18446744073709551615}
{"match_id":"b","policy_i":"x","policy_j":"y","payoff_i":1,"payoff_j":0,"seed":"9223372036854775808"}
{"match_id":"c","policy_i":"x","policy_j":"y","payoff_i":1,"payoff_j":0,"seed":-1}
{"match_id":"d","policy_i":"x","policy_j":"y","payoff_i":1,"payoff_j":0,"seed":"-3"}
{"match_id":"e","policy_i":"x","policy_j":"y","payoff_i":1,"payoff_j":0,"seed":2.5}
"#;
    let out = read_json("s.jsonl", text.as_bytes()).unwrap();
    let seeds: Vec<Option<u64>> = out.matches.iter().map(|(_, m)| m.seed).collect();
    assert_eq!(seeds, vec![Some(u64::MAX), Some(1 << 63)]);
    let errs: Vec<(u64, &str)> = out
        .errors
        .iter()
        .map(|e| (e.row, e.reason.as_str()))
        .collect();
    assert_eq!(
        errs,
        vec![
            (3, "seed -1 is negative"),
            (4, "seed -3 is negative"),
            (5, "expected an integer, got 2.5")
        ]
    );
    let csv = "match_id,policy_i,policy_j,payoff_i,payoff_j,seed\na,x,y,1,0,18446744073709551615\n";
    let out = read_csv("s.csv", csv.as_bytes()).unwrap();
    assert_eq!(out.matches[0].1.seed, Some(u64::MAX));
    let path = tmp("seeds.parquet");
    let mut m = Match::new("a", "g", "x", "y", 1.0, 0.0);
    m.seed = Some(u64::MAX);
    write_parquet(&path, &matches_batch([&m])).unwrap();
    let back = read_file(&path).unwrap();
    assert!(back.errors.is_empty(), "{:?}", back.errors);
    assert_eq!(back.matches[0].1.seed, Some(u64::MAX));
}

/// `ts` is milliseconds since the epoch, as an integer or as an RFC 3339 / ISO 8601 time in
/// text (no zone: UTC), floored to the millisecond.
#[test]
fn times_in_text_become_milliseconds() {
    let text = "match_id,ts,policy_i,policy_j,payoff_i,payoff_j\n\
                a,2026-01-01T00:00:00Z,x,y,1,0\n\
                b,2026-01-01 01:00:00.0019+01:00,x,y,1,0\n\
                c,1767225600000,x,y,1,0\n\
                d,1969-12-31T23:59:59.9995,x,y,1,0\n\
                e,yesterday,x,y,1,0\n";
    let out = read_csv("t.csv", text.as_bytes()).unwrap();
    let ts: Vec<Option<i64>> = out.matches.iter().map(|(_, m)| m.ts).collect();
    // 2026-01-01T00:00:00Z is 1,767,225,600,000 ms after the epoch.
    assert_eq!(
        ts,
        [
            Some(1_767_225_600_000),
            Some(1_767_225_600_001),
            Some(1_767_225_600_000),
            Some(-1)
        ]
    );
    assert_eq!(out.errors.len(), 1);
    assert_eq!(
        (out.errors[0].row, out.errors[0].field.as_deref()),
        (5, Some("ts"))
    );
    assert!(
        out.errors[0].reason.contains("RFC 3339"),
        "{:?}",
        out.errors[0]
    );
}

/// A file without a column every match needs says so on each row it fails, naming the
/// columns it has; a retraction, which needs none of them, still decodes.
#[test]
fn absent_columns_are_named() {
    let text = "match_id,policy_i,policy_j,payoff_i,retract\n\
                a,x,y,1,\n\
                b,,,,true\n";
    let out = read_csv("log.csv", text.as_bytes()).unwrap();
    assert_eq!(out.matches.len(), 1);
    assert!(out.matches[0].1.retract);
    assert_eq!(out.errors.len(), 1);
    assert_eq!(out.errors[0].field.as_deref(), Some("payoff_j"));
    assert_eq!(
        out.errors[0].reason,
        "the file has no `payoff_j` column (it has: match_id, policy_i, policy_j, payoff_i, retract)"
    );
    let batch = RecordBatch::try_from_iter(vec![
        (
            "policy_i",
            Arc::new(StringArray::from(vec!["a"])) as ArrayRef,
        ),
        (
            "payoff_i",
            Arc::new(Float32Array::from(vec![1.0])) as ArrayRef,
        ),
        (
            "payoff_j",
            Arc::new(Float32Array::from(vec![0.0])) as ArrayRef,
        ),
    ])
    .unwrap();
    let path = tmp("no_policy_j.parquet");
    write_parquet(&path, &batch).unwrap();
    let out = read_file(&path).unwrap();
    assert_eq!(out.errors.len(), 1);
    assert_eq!(
        out.errors[0].reason,
        "the file has no `policy_j` column (it has: policy_i, payoff_i, payoff_j)"
    );
}

/// A payoff beyond the fixed-point range is named in its shortest form, not in all of its
/// digits.
#[test]
fn oversized_payoffs_are_named_briefly() {
    let text = r#"{"match_id":"1","policy_i":"a","policy_j":"b","payoff_i":1e300,"payoff_j":0}
{"match_id":"2","policy_i":"a","policy_j":"b","payoff_i":0,"payoff_j":-3000000000}
"#;
    let out = read_json("s.jsonl", text.as_bytes()).unwrap();
    let reasons: Vec<&str> = out.errors.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "magnitude of 1e300 is not below 2^31",
            "magnitude of -3000000000 is not below 2^31"
        ]
    );
    // Long text is cut in the reason; the dead letter's raw record keeps all of it.
    let long = "é".repeat(500);
    let text = format!(
        r#"{{"match_id":"3","policy_i":"a","policy_j":"b","payoff_i":"{long}","payoff_j":0}}"#
    );
    let out = read_json("s.jsonl", text.as_bytes()).unwrap();
    let e = &out.errors[0];
    assert_eq!(
        e.reason,
        format!(
            "expected a number, got {:?}… (500 characters)",
            "é".repeat(40)
        )
    );
    assert!(e.raw.contains(&long));
}

#[test]
fn json_array_file() {
    let out = read_json(
        "a.json",
        r#"[{"policy_i":"a","policy_j":"b","payoff_i":1,"payoff_j":0}]"#.as_bytes(),
    )
    .unwrap();
    assert_eq!(out.matches.len(), 1);
    assert_eq!(out.matches[0].1.match_id, "a.json:1");
    // A pretty-printed array, and one that is broken: the whole file is unreadable then.
    let pretty = "[\n  {\"policy_i\": \"a\", \"policy_j\": \"b\", \"payoff_i\": 1, \"payoff_j\": 0},\n  {\"policy_i\": \"b\", \"policy_j\": \"a\", \"payoff_i\": 0, \"payoff_j\": 1}\n]\n";
    assert_eq!(
        read_json("p.json", pretty.as_bytes())
            .unwrap()
            .matches
            .len(),
        2
    );
    let broken = &pretty[..pretty.len() - 3];
    let err = read_json("p.json", broken.as_bytes()).unwrap_err();
    assert!(err.starts_with("invalid JSON array"), "{err}");
}

/// JSON Lines whose first line is an array (whole or broken) is a bad first row, not an
/// unreadable file: the records after it are kept.
#[test]
fn json_lines_starting_with_an_array_keep_their_records() {
    let record = r#"{"match_id":"m","policy_i":"a","policy_j":"b","payoff_i":1,"payoff_j":0}"#;
    for first in ["[1,2,3]", "[1,2"] {
        let text = format!("{first}\n{record}\n");
        let out = read_json("l.jsonl", text.as_bytes()).unwrap();
        let ids = ids(&out);
        assert_eq!(ids, vec!["m"], "{first}");
        assert_eq!(out.errors.len(), 1, "{first}: {:?}", out.errors);
        assert_eq!(out.errors[0].row, 1);
    }
}

/// One match of `a` against `b` with `payoff_i` as given, `payoff_j` 0, and an `extra`
/// column.
fn a_vs_b(payoff_i: ArrayRef, extra: Option<(&str, ArrayRef)>) -> RecordBatch {
    let text = |v: &str| Arc::new(StringArray::from(vec![v.to_string()])) as ArrayRef;
    let mut columns = vec![
        ("policy_i", text("a")),
        ("policy_j", text("b")),
        ("payoff_i", payoff_i),
        (
            "payoff_j",
            Arc::new(Float32Array::from(vec![0.0])) as ArrayRef,
        ),
    ];
    columns.extend(extra);
    RecordBatch::try_from_iter(columns).unwrap()
}

#[test]
fn parquet_round_trip_and_foreign_types() {
    let m = Match {
        match_id: "m1".into(),
        ts: Some(5),
        game: "g".into(),
        policy_i: "a".into(),
        policy_j: "b".into(),
        payoff_i: 0.25,
        payoff_j: 0.75,
        batna_i: Some(0.1),
        batna_j: None,
        agreement: Some(true),
        ef1: None,
        context: Some("map1".into()),
        propensity: Some(0.5),
        source: None,
        seed: Some(9),
        retract: false,
    };
    let path = tmp("round.parquet");
    write_parquet(&path, &matches_batch([&m])).unwrap();
    let out = read_file(&path).unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.matches[0].1, m);
    assert_eq!(read_parquet_batches(&path).unwrap()[0].num_rows(), 1);

    // A file as pandas might write it: dictionary-encoded names, int32 payoffs, float32,
    // no match_id, and a payoff column of the wrong type in a second file.
    let names: DictionaryArray<Int8Type> = vec!["a", "b", "a"].into_iter().collect();
    let batch = RecordBatch::try_from_iter(vec![
        ("policy_i", Arc::new(names.clone()) as ArrayRef),
        (
            "policy_j",
            Arc::new(StringArray::from(vec!["b", "a", "a"])) as ArrayRef,
        ),
        (
            "payoff_i",
            Arc::new(Int32Array::from(vec![1, 0, 2])) as ArrayRef,
        ),
        (
            "payoff_j",
            Arc::new(Float32Array::from(vec![0.5, 1.0, 2.0])) as ArrayRef,
        ),
        ("ts", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
    ])
    .unwrap();
    let path = tmp("pandas.parquet");
    write_parquet(&path, &batch).unwrap();
    let out = read_file(&path).unwrap();
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.matches.len(), 3);
    assert_eq!(out.matches[2].1.payoff_i, 2.0);
    assert!(out.matches[0].1.match_id.ends_with("pandas.parquet:1"));

    // Times as Parquet dates (days) and timestamps (here seconds) become ms since the epoch:
    // day 20,454 after 1970-01-01, and second 1,767,225,600, are 2026-01-01.
    let path = tmp("dates.parquet");
    for ts in [
        Arc::new(arrow::array::Date32Array::from(vec![20454])) as ArrayRef,
        Arc::new(arrow::array::TimestampSecondArray::from(vec![
            1_767_225_600,
        ])) as ArrayRef,
    ] {
        let one = a_vs_b(Arc::new(Float32Array::from(vec![1.0])), Some(("ts", ts)));
        write_parquet(&path, &one).unwrap();
        let out = read_file(&path).unwrap();
        assert!(out.errors.is_empty(), "{:?}", out.errors);
        assert_eq!(out.matches[0].1.ts, Some(1_767_225_600_000));
    }

    let bad = a_vs_b(
        Arc::new(arrow::array::BinaryArray::from(vec![b"x".as_ref()])),
        None,
    );
    let path = tmp("bad.parquet");
    write_parquet(&path, &bad).unwrap();
    let out = read_file(&path).unwrap();
    assert_eq!(out.errors.len(), 1);
    assert_eq!(out.errors[0].field.as_deref(), Some("payoff_i"));
    assert!(out.errors[0].reason.contains("unknown column type"));
}

#[test]
fn files_that_cannot_be_opened_are_errors_naming_the_path() {
    let e = read_file(std::path::Path::new("/nonexistent/x.csv"))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("/nonexistent/x.csv:"), "{e}");
    let e = read_file(std::path::Path::new("/nonexistent"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("No such file"), "{e}");
    let path = tmp("notes.txt");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(b"hi")
        .unwrap();
    assert!(read_file(&path)
        .unwrap_err()
        .to_string()
        .contains("unknown file type"));
}

/// Content that cannot be read is one error for the file (row 0, no field), not a failure
/// of the read: a caller keeps going, and the strict readers still refuse it.
#[test]
fn unreadable_content_is_one_dead_letter_for_the_file() {
    let garbage = tmp("garbage.parquet");
    std::fs::write(&garbage, b"not parquet").unwrap();
    // A good file cut short loses its footer.
    let cut = tmp("cut.parquet");
    write_parquet(&cut, &matches_batch([&mk("1", 1.0)])).unwrap();
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let header = tmp("bad_header.csv");
    std::fs::write(&header, b"match_id,\xff\xfe\n1,2\n").unwrap();
    for path in [&garbage, &cut, &header] {
        let out = read_file(path).unwrap();
        assert!(out.matches.is_empty());
        assert_eq!(out.errors.len(), 1, "{:?}", out.errors);
        let e = &out.errors[0];
        assert_eq!((e.row, e.field.as_deref()), (0, None));
        assert_eq!(e.source_name, path.display().to_string());
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("{}: ", path.display())) && !shown.contains("row 0"),
            "{shown}"
        );
    }
    assert!(read_file(&garbage).unwrap().errors[0]
        .reason
        .contains("not a readable Parquet file"));
    assert!(read_csv("h.csv", &b"match_id,\xff\n"[..]).is_err());
}

/// The reading progress reaches the whole file, in every format, and only grows.
#[test]
fn reading_reports_progress_up_to_the_whole_file() {
    let record = |k: usize| {
        format!(r#"{{"match_id":"{k}","policy_i":"a","policy_j":"b","payoff_i":1,"payoff_j":0}}"#)
    };
    let jsonl = tmp("progress.jsonl");
    let text: String = (0..40_000).map(|k| record(k) + "\n").collect();
    std::fs::write(&jsonl, &text).unwrap();
    let csv = tmp("progress.csv");
    let rows: String = (0..40_000).map(|k| format!("{k},a,b,1,0\n")).collect();
    std::fs::write(
        &csv,
        format!("match_id,policy_i,policy_j,payoff_i,payoff_j\n{rows}"),
    )
    .unwrap();
    let parquet = tmp("progress.parquet");
    let ms: Vec<Match> = (0..40_000).map(|k| mk(&k.to_string(), 1.0)).collect();
    write_parquet(&parquet, &matches_batch(ms.iter())).unwrap();
    for path in [&jsonl, &csv, &parquet] {
        let len = std::fs::metadata(path).unwrap().len();
        let mut seen: Vec<(u64, u64)> = Vec::new();
        let out = nashflow_schemas::read::read_file_reporting(path, &mut |d, t| seen.push((d, t)))
            .unwrap();
        assert_eq!(out.matches.len(), 40_000, "{}", path.display());
        assert!(!seen.is_empty(), "{}", path.display());
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
        assert!(seen.iter().all(|&(_, t)| t == len));
        assert_eq!(seen.last().unwrap().0, len, "{}", path.display());
    }
}

/// A JSON Lines file with a line that is not UTF-8 keeps the lines around it (it used to
/// lose the whole file).
#[test]
fn a_line_that_is_not_utf8_is_one_bad_row() {
    let mut text = b"{\"match_id\":\"1\",\"policy_i\":\"a\",\"policy_j\":\"b\",\"payoff_i\":1,\"payoff_j\":0}\r\n".to_vec();
    text.extend_from_slice(b"{\"match_id\":\"2\",\"policy_i\":\"\xff\"}\n");
    text.extend_from_slice(b"{\"match_id\":\"3\",\"policy_i\":\"b\",\"policy_j\":\"a\",\"payoff_i\":1,\"payoff_j\":0}\n");
    let out = read_json("s.jsonl", &text[..]).unwrap();
    let ids = ids(&out);
    assert_eq!(ids, ["1", "3"]);
    assert_eq!(out.errors.len(), 1);
    assert_eq!(out.errors[0].row, 2);
    assert!(
        out.errors[0].reason.contains("UTF-8"),
        "{:?}",
        out.errors[0]
    );
    assert!(out.errors[0].raw.contains("match_id"));
    // A byte-order mark before the first record, in either JSON form, is not part of it.
    let record = r#"{"match_id":"1","policy_i":"a","policy_j":"b","payoff_i":1,"payoff_j":0}"#;
    for text in [format!("\u{feff}{record}\n"), format!("\u{feff}[{record}]")] {
        let out = read_json("bom.json", text.as_bytes()).unwrap();
        assert_eq!((out.matches.len(), out.errors.len()), (1, 0), "{text}");
    }
}

fn mk(id: &str, pi: f64) -> Match {
    Match::new(id, "g", "a", "b", pi, 0.0)
}

#[test]
fn ledger_dedupe_conflict_and_retraction() {
    let mut l = Ledger::new(Layout::Match);
    assert_eq!(l.apply(mk("1", 1.0)), Outcome::Inserted);
    assert_eq!(l.apply(mk("1", 1.0)), Outcome::Duplicate);
    assert!(matches!(l.apply(mk("1", 2.0)), Outcome::Rejected(r) if r.contains("conflict")));
    assert_eq!(l.live().next().unwrap().payoff_i, 1.0, "the first stays");
    let mut r = mk("1", 0.0);
    r.retract = true;
    assert!(matches!(l.apply(r.clone()), Outcome::Retracted(old) if old.payoff_i == 1.0));
    assert!(l.is_empty());
    assert!(matches!(l.apply(r), Outcome::Rejected(_)));
    // After a retraction the id may be used again.
    assert_eq!(l.apply(mk("1", 3.0)), Outcome::Inserted);
    // Perspective rows of one match share its id but are different seats.
    let mut p = Ledger::new(Layout::Perspective);
    let mut other_seat = mk("9", 0.0);
    other_seat.policy_i = "b".into();
    other_seat.policy_j = "a".into();
    assert_eq!(p.apply(mk("9", 1.0)), Outcome::Inserted);
    assert_eq!(p.apply(other_seat), Outcome::Inserted);
    assert_eq!(p.len(), 2);
}

/// Retracted slots are reclaimed: with a fixed live size the ledger's memory stays bounded,
/// and the live records keep their arrival order and stay retractable.
#[test]
fn ledger_reclaims_retracted_slots() {
    let mut l = Ledger::new(Layout::Match);
    for k in 0..10_000 {
        assert_eq!(l.apply(mk(&k.to_string(), k as f64)), Outcome::Inserted);
        if k >= 5 {
            let mut r = mk(&(k - 5).to_string(), 0.0);
            r.retract = true;
            assert!(
                matches!(l.apply(r), Outcome::Retracted(old) if old.payoff_i == (k - 5) as f64)
            );
        }
        assert!(l.held() <= 2 * l.len() + 17, "held {} at {k}", l.held());
    }
    let live: Vec<f64> = l.live().map(|m| m.payoff_i).collect();
    assert_eq!(live, vec![9995.0, 9996.0, 9997.0, 9998.0, 9999.0]);
    assert_eq!(l.apply(mk("9997", 9997.0)), Outcome::Duplicate);
}
