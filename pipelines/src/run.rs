//! `nashflow run`: the incremental engine over file inputs, epoch by epoch.

use std::path::PathBuf;

use anyhow::{bail, Result};
use nashflow_connectors::jobs::JobSink;
use nashflow_operators::engine::{run as run_engine, EngineConfig};
use nashflow_operators::trigger::TriggerConfig;
use nashflow_schemas::read::Format;
use nashflow_schemas::{read_file, Match, RecordError};

use crate::analyze::report_dead_letters;
use crate::cli::{OutputFormat, RunArgs};
use crate::report::GameReport;
use crate::tables;

/// Files named directly, and the supported files inside named directories (sorted by name).
fn expand(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && Format::from_path(f).is_some())
                .collect();
            inside.sort();
            files.extend(inside);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

pub fn run(args: &RunArgs) -> Result<()> {
    if args.epoch_records == 0 {
        bail!("--epoch-records must be at least 1");
    }
    let mut records: Vec<Match> = Vec::new();
    // Where each record came from, by arrival position (the engine's seq − 1).
    let mut origin: Vec<(String, u64)> = Vec::new();
    let mut dead_letters: Vec<RecordError> = Vec::new();
    for path in expand(&args.input)? {
        let outcome = read_file(&path)?;
        dead_letters.extend(outcome.errors);
        let source = path.display().to_string();
        for (row, m) in outcome.matches {
            records.push(m);
            origin.push((source.clone(), row));
        }
    }
    if records.is_empty() {
        bail!(
            "no valid records in the input ({} bad rows)",
            dead_letters.len()
        );
    }
    let epochs: Vec<Vec<Match>> = records
        .chunks(args.epoch_records)
        .map(|c| c.to_vec())
        .collect();
    let sinks: Vec<JobSink> = args
        .jobs
        .iter()
        .map(|s| s.parse::<JobSink>().map_err(anyhow::Error::msg))
        .collect::<Result<_>>()?;
    let trigger = (!args.no_trigger).then(|| TriggerConfig {
        threshold: args.trigger_threshold,
        relative: args.trigger_mode == "relative",
        hysteresis: args.trigger_hysteresis,
        cooldown: args.trigger_cooldown,
    });
    let cfg = EngineConfig {
        workers: args.workers,
        layout: args.model.layout,
        analysis: args.model.analysis(0, args.ci_level),
        trigger,
        replicates: args.bootstrap,
    };
    let started = std::time::Instant::now();
    let out = run_engine(epochs, &cfg);
    let elapsed = started.elapsed().as_secs_f64();
    if !args.quiet {
        for t in 0..out.epochs {
            let changed: Vec<String> = out
                .changes
                .iter()
                .filter(|c| c.0 == t)
                .map(|(_, game, snap)| match snap {
                    Some(s) => format!(
                        "{game} exploitability {:.6}",
                        s.analysis.eval.exploitability
                    ),
                    None => format!("{game} removed"),
                })
                .collect();
            let jobs: Vec<String> = out
                .jobs
                .iter()
                .filter(|j| j.epoch == t)
                .map(|j| {
                    format!(
                        "job {} (best response vs σ; {} regrets {:.4})",
                        j.job_id, j.target_policy, j.exploitability
                    )
                })
                .collect();
            let mut line = if changed.is_empty() {
                "no change".to_string()
            } else {
                changed.join(", ")
            };
            if !jobs.is_empty() {
                line = format!("{line}; {}", jobs.join(", "));
            }
            eprintln!("epoch {t}: {line}");
        }
        eprintln!(
            "{} records in {} epochs, {:.2} s ({:.0} records/s, {} worker(s))",
            records.len(),
            out.epochs,
            elapsed,
            records.len() as f64 / elapsed.max(1e-9),
            args.workers
        );
    }
    for d in &out.dead_letters {
        let (source, row) = origin[(d.seq - 1) as usize].clone();
        dead_letters.push(RecordError {
            source_name: source,
            row,
            field: Some("match_id".into()),
            reason: d.reason.clone(),
            raw: serde_json::to_string(&d.record).unwrap_or_default(),
        });
    }
    report_dead_letters(&dead_letters);
    for (epoch, game, reason) in &out.errors {
        eprintln!("warning: epoch {epoch}: analysis of game `{game}` failed ({reason}); its previous snapshot stands");
    }
    for job in &out.jobs {
        for sink in &sinks {
            // A sink failure is reported, not fatal: the job is still in the jobs table.
            if let Err(e) = sink.send(job) {
                eprintln!("warning: job {} not delivered: {e}", job.job_id);
            }
        }
    }
    let last = out.epochs.saturating_sub(1);
    let state = out.state_at(last);
    let reports: Vec<GameReport> = state
        .into_iter()
        .map(|(game, s)| GameReport {
            game,
            policies: s.policies,
            records: s.records,
            solver: cfg.analysis.solver.kind,
            missing: cfg.analysis.missing,
            analysis: s.analysis,
            elo: None,
            cells: s.cells,
        })
        .collect();
    if let Some(dir) = &args.out {
        // The accepted records: replay the ledger over the input to list the live ones.
        let mut ledger = nashflow_schemas::Ledger::new(args.model.layout);
        for m in &records {
            ledger.apply(m.clone());
        }
        tables::write_snapshot(dir, &reports, last, ledger.live(), &dead_letters, &out.jobs)?;
        eprintln!("wrote Parquet tables to {}", dir.display());
    }
    match args.format {
        OutputFormat::Json => {
            let mut doc = crate::report::document(&reports, dead_letters.len());
            doc["epoch"] = serde_json::json!(last);
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        OutputFormat::Table => {
            for (k, r) in reports.iter().enumerate() {
                if k > 0 {
                    println!();
                }
                print!("{}", r.to_table());
            }
        }
    }
    Ok(())
}
