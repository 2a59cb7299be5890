//! `nashflow analyze`: read logs → dedupe → per-game analysis → table / JSON / Parquet.

use anyhow::{bail, Context, Result};
use nashflow_kernels::analysis::{add_bounds, analyze_game};
use nashflow_kernels::ratings::elo;
use nashflow_operators::batch::{bound_cells, group};
use nashflow_schemas::read::{read_file_reporting, read_json};
use nashflow_schemas::{FileError, Ledger, ReadOutcome, RecordError};
use serde_json::Value;

use crate::cli::{AnalyzeArgs, OutputFormat};
use crate::file_source::{listing, not_opened};
use crate::progress::{Bar, ReadBar};
use crate::report::GameReport;
use crate::tables;

/// The result of an analysis run, before rendering.
pub struct Analysis {
    pub reports: Vec<GameReport>,
    pub dead_letters: Vec<RecordError>,
    pub ledger: Ledger,
}

pub fn run_analysis(args: &AnalyzeArgs) -> Result<Analysis> {
    if !(args.ci_level > 0.0 && args.ci_level < 1.0) {
        bail!("--ci-level must be in (0, 1), got {}", args.ci_level);
    }
    let mut ledger = Ledger::new(args.model.layout);
    let mut dead_letters = Vec::new();
    let mut skipped = std::collections::HashSet::new();
    // A directory means its match logs, as `run` reads it; a file in it that cannot be opened
    // is a dead letter, a named one an error.
    let mut files = Vec::new();
    for path in &args.files {
        if path.is_dir() {
            files.extend(listing(path, &mut skipped).into_iter().map(|f| (f, false)));
        } else {
            files.push((path.clone(), true));
        }
    }
    for (path, named) in files {
        let stdin = path.as_os_str() == "-";
        let read = if stdin {
            // JSON Lines on stdin, as `run -i -` reads them.
            read_json("stdin", std::io::stdin().lock()).map_err(|reason| FileError::Unreadable {
                path: "stdin".into(),
                reason,
            })
        } else {
            let mut reading = ReadBar::new(args.quiet, &path);
            let read = read_file_reporting(&path, &mut |done, total| reading.report(done, total));
            reading.finish();
            read
        };
        let outcome = match read {
            Ok(o) => o,
            Err(e) if named => return Err(e.into()),
            Err(e) => ReadOutcome {
                matches: Vec::new(),
                errors: vec![not_opened(&path, e)],
            },
        };
        if args.strict {
            if let Some(e) = outcome.errors.first() {
                bail!("bad input (--strict): {e}");
            }
        }
        dead_letters.extend(outcome.errors);
        let source = if stdin {
            "stdin".to_string()
        } else {
            path.display().to_string()
        };
        for (row, m) in outcome.matches {
            if let Err(e) = ledger.apply_or_dead_letter(m, &source, row) {
                if args.strict {
                    bail!("bad row (--strict): {e}");
                }
                dead_letters.push(e);
            }
        }
    }
    let live: Vec<_> = ledger
        .live()
        .filter(|m| args.game.as_ref().is_none_or(|g| &m.game == g))
        .collect();
    if live.is_empty() {
        match &args.game {
            Some(g) => bail!("no valid matches for game `{g}` in the input"),
            None if dead_letters.is_empty() => {
                bail!("no live matches in the input: it has no data rows, or every match in it was retracted")
            }
            None => return Err(every_row_bad(&dead_letters, args.out.as_deref(), 0)),
        }
    }
    let cfg = args.model.analysis(args.bootstrap, args.ci_level);
    if let Some(b) = &cfg.bounds {
        b.validate().map_err(anyhow::Error::msg)?;
    }
    let mut bar = Bar::new(args.quiet);
    let mut reports = Vec::new();
    for input in group(live.iter().copied(), args.model.layout) {
        let n = input.policies.len();
        let mut analysis = analyze_game(n, &input.cells, &input.units, &cfg, &mut bar)
            .with_context(|| format!("analysing game `{}`", input.game))?;
        if let Some(b) = &cfg.bounds {
            let cells = bound_cells(
                live.iter().copied(),
                args.model.layout,
                &input.game,
                &input.policies,
            );
            add_bounds(&mut analysis, &input.policies, &cells, b)
                .with_context(|| format!("causal bounds of game `{}`", input.game))?;
        }
        reports.push(GameReport {
            elo: Some(elo(n, input.results.iter().copied())),
            game: input.game,
            policies: input.policies,
            records: input.records,
            solver: cfg.solver.kind,
            missing: cfg.missing,
            analysis,
            cells: input.cells,
        });
    }
    Ok(Analysis {
        reports,
        dead_letters,
        ledger,
    })
}

/// The `--format json` document (see [`crate::report::document`]).
pub fn to_json(a: &Analysis) -> Value {
    crate::report::document(&a.reports, a.dead_letters.len())
}

pub fn write_out(a: &Analysis, dir: &std::path::Path) -> Result<()> {
    tables::write_snapshot(dir, &a.reports, 0, a.ledger.live(), &a.dead_letters, &[])
}

pub fn run(args: &AnalyzeArgs) -> Result<()> {
    let a = run_analysis(args)?;
    report_dead_letters(&a.dead_letters, args.out.as_deref(), true);
    for r in &a.reports {
        let g = &r.analysis.matrices;
        if let Some(hint) = crate::report::imputation_hint(&r.game, g, r.solver, r.missing) {
            eprintln!("{hint}");
        }
    }
    if let Some(dir) = &args.out {
        write_out(&a, dir)?;
        eprintln!("wrote Parquet tables to {}", dir.display());
    }
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&to_json(&a))?),
        OutputFormat::Table => {
            for (k, r) in a.reports.iter().enumerate() {
                if k > 0 {
                    println!();
                }
                print!("{}", r.to_table());
            }
        }
    }
    Ok(())
}

/// Bad rows are never silent: a summary and the first few reasons on stderr. `kept` is the
/// `--out` directory whose `dead_letters.parquet` holds them, if any; `strict`: the command
/// has `--strict`.
pub fn report_dead_letters(errors: &[RecordError], kept: Option<&std::path::Path>, strict: bool) {
    if errors.is_empty() {
        return;
    }
    let kept = match kept {
        Some(dir) => format!("kept in {}", dir.join("dead_letters.parquet").display()),
        None => "--out DIR keeps them in DIR/dead_letters.parquet".to_string(),
    };
    let strict = if strict {
        ", --strict stops at the first"
    } else {
        ""
    };
    eprintln!("warning: {} skipped ({kept}{strict}):", bad_input(errors));
    list_bad_rows(errors);
}

/// "N bad row(s)", and the unreadable files (or parts of files) among them.
fn bad_input(errors: &[RecordError]) -> String {
    let files = errors.iter().filter(|e| e.row == 0).count();
    let rows = errors.len() - files;
    match files {
        0 => format!("{rows} bad row(s)"),
        _ => format!("{rows} bad row(s) and {files} unreadable file(s)"),
    }
}

/// The error of a run in which every row was bad, after listing them on stderr. With
/// `--out DIR` the rows are kept in DIR/dead_letters.parquet first (the other tables empty),
/// so that bad input never vanishes, not even when nothing else is left.
pub fn every_row_bad(
    errors: &[RecordError],
    out: Option<&std::path::Path>,
    epoch: u64,
) -> anyhow::Error {
    eprintln!("bad rows:");
    list_bad_rows(errors);
    let kept = match out {
        Some(dir) => {
            if let Err(e) = tables::write_snapshot(dir, &[], epoch, std::iter::empty(), errors, &[])
            {
                return e.context("writing the dead letters");
            }
            format!("; kept in {}", dir.join("dead_letters.parquet").display())
        }
        None => String::new(),
    };
    anyhow::anyhow!(
        "no valid records in the input ({}, listed above{kept})",
        bad_input(errors)
    )
}

/// The first ten bad rows' reasons on stderr, and how many more there are.
pub fn list_bad_rows(errors: &[RecordError]) {
    for e in errors.iter().take(10) {
        eprintln!("  {e}");
    }
    if errors.len() > 10 {
        eprintln!("  … and {} more", errors.len() - 10);
    }
}
