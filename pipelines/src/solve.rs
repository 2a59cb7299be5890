//! `nashflow solve`: solve a payoff matrix given directly.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use nashflow_kernels::metrics::evaluate;
use nashflow_kernels::solvers::{SolverKind, CONSTANT_SUM_TOL};
use nashflow_kernels::{Matrix, SolverConfig};
use serde_json::json;

use crate::cli::{OutputFormat, SolveArgs};
use crate::report::num;

/// A named payoff matrix.
pub struct NamedMatrix {
    pub policies: Vec<String>,
    pub payoff: Matrix,
}

pub fn parse_json(text: &str) -> Result<NamedMatrix> {
    #[derive(serde::Deserialize)]
    struct Doc {
        policies: Option<Vec<String>>,
        payoff: Vec<Vec<f64>>,
    }
    let doc: Doc = serde_json::from_str(text)
        .context("expected JSON {\"policies\": [...], \"payoff\": [[...]]}")?;
    let payoff = Matrix::from_rows(&doc.payoff)?;
    let policies = doc
        .policies
        .unwrap_or_else(|| (0..payoff.n()).map(|k| format!("p{k}")).collect());
    if policies.len() != payoff.n() {
        bail!(
            "{} policy names for a {}×{} matrix",
            policies.len(),
            payoff.n(),
            payoff.n()
        );
    }
    Ok(NamedMatrix { policies, payoff })
}

/// CSV: a header row of policy names; an optional first column of row labels is skipped
/// (detected by a non-numeric first cell, or by the header having one more name than rows).
pub fn parse_csv(text: &str) -> Result<NamedMatrix> {
    let mut rdr = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let mut names: Vec<String> = rdr
        .headers()?
        .iter()
        .map(|s| s.trim().to_string())
        .collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for rec in rdr.records() {
        rows.push(rec?.iter().map(|s| s.trim().to_string()).collect());
    }
    let labelled = rows
        .first()
        .is_some_and(|r| r.first().is_some_and(|c| c.parse::<f64>().is_err()));
    if labelled {
        names.remove(0);
        rows.iter_mut().for_each(|r| {
            r.remove(0);
        });
    }
    let mut payoff = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let vals: Result<Vec<f64>, _> = r.iter().map(|c| c.parse::<f64>()).collect();
        payoff.push(vals.with_context(|| format!("row {}: every entry must be a number", i + 1))?);
    }
    let payoff = Matrix::from_rows(&payoff)?;
    if names.len() != payoff.n() {
        bail!(
            "{} names in the header for a {}-row matrix",
            names.len(),
            payoff.n()
        );
    }
    Ok(NamedMatrix {
        policies: names,
        payoff,
    })
}

pub fn load(path: &Path) -> Result<NamedMatrix> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text)?;
        return parse_json(&text);
    }
    text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        parse_csv(&text)
    } else {
        parse_json(&text)
    }
    .with_context(|| format!("parsing {}", path.display()))
}

pub fn solve_json(m: &NamedMatrix, solver: &SolverConfig) -> Result<serde_json::Value> {
    let t0 = std::time::Instant::now();
    let solved = solver.solve_detailed(&m.payoff)?;
    let secs = t0.elapsed().as_secs_f64();
    let sigma = solved.sigma;
    let e = evaluate(&m.payoff, &sigma);
    Ok(json!({
        "policies": m.policies,
        "solver": solver.kind.name(),
        "solver_exact": solved.exact,
        "constant_sum": m.payoff.constant_sum(CONSTANT_SUM_TOL).is_some(),
        "sigma": sigma.iter().map(|&x| num(x)).collect::<Vec<_>>(),
        "regret": e.regret.iter().map(|&x| num(x)).collect::<Vec<_>>(),
        "value": num(e.value),
        "exploitability": num(e.exploitability),
        "entropy": num(nashflow_kernels::matrix::entropy(&sigma)),
        "solve_seconds": secs,
    }))
}

pub fn run(args: &SolveArgs) -> Result<()> {
    let m = load(&args.matrix)?;
    let out = solve_json(&m, &args.solver.config())?;
    match args.format {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&out)?),
        OutputFormat::Table => {
            let w = m
                .policies
                .iter()
                .map(|p| p.chars().count())
                .max()
                .unwrap_or(6)
                .max(6);
            println!("{:<w$}  {:>10}  {:>12}", "policy", "mass", "regret");
            for (k, p) in m.policies.iter().enumerate() {
                println!(
                    "{:<w$}  {:>10.6}  {:>+12.6}",
                    p,
                    out["sigma"][k].as_f64().unwrap_or(f64::NAN),
                    out["regret"][k].as_f64().unwrap_or(f64::NAN)
                );
            }
            println!(
                "\nsolver {}   value {:.6}   exploitability {:.3e}   solve {:.4} s",
                args.solver.solver,
                out["value"].as_f64().unwrap_or(f64::NAN),
                out["exploitability"].as_f64().unwrap_or(f64::NAN),
                out["solve_seconds"].as_f64().unwrap_or(f64::NAN)
            );
            for note in notes(&out, args.solver.solver) {
                println!("note: {note}");
            }
        }
    }
    Ok(())
}

/// What the table view says below the numbers when σ is not what the solver promises.
fn notes(out: &serde_json::Value, kind: SolverKind) -> Vec<&'static str> {
    let mut notes = Vec::new();
    if out["solver_exact"] == false {
        notes.push(kind.inexact_reason());
    }
    if kind == SolverKind::NashLp && out["constant_sum"] == false {
        notes.push(
            "the game is not constant-sum, so nash-lp's maximin σ need not be an equilibrium \
             (see its exploitability); mene solves general-sum games",
        );
    }
    notes
}
