//! The output tables of DESIGN §4 as Arrow record batches, written as Parquet by `--out`.
//! Every table carries `game` and `epoch` (0 for a batch analysis).

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use nashflow_kernels::metrics::WelfareKind;
use nashflow_operators::trigger::Job;
use nashflow_schemas::arrow_io::write_parquet;

use crate::report::GameReport;

/// Column-by-column batch builder.
#[derive(Default)]
pub struct Table {
    fields: Vec<Field>,
    cols: Vec<ArrayRef>,
}

impl Table {
    pub fn str(mut self, name: &str, v: Vec<String>) -> Self {
        self.fields.push(Field::new(name, DataType::Utf8, false));
        self.cols.push(Arc::new(StringArray::from(v)));
        self
    }
    pub fn opt_str(mut self, name: &str, v: Vec<Option<String>>) -> Self {
        self.fields.push(Field::new(name, DataType::Utf8, true));
        self.cols.push(Arc::new(StringArray::from(v)));
        self
    }
    pub fn f64(mut self, name: &str, v: Vec<f64>) -> Self {
        self.fields.push(Field::new(name, DataType::Float64, false));
        self.cols.push(Arc::new(Float64Array::from(v)));
        self
    }
    pub fn opt_f64(mut self, name: &str, v: Vec<Option<f64>>) -> Self {
        self.fields.push(Field::new(name, DataType::Float64, true));
        self.cols.push(Arc::new(Float64Array::from(v)));
        self
    }
    pub fn u64(mut self, name: &str, v: Vec<u64>) -> Self {
        self.fields.push(Field::new(name, DataType::UInt64, false));
        self.cols.push(Arc::new(UInt64Array::from(v)));
        self
    }
    pub fn bool(mut self, name: &str, v: Vec<bool>) -> Self {
        self.fields.push(Field::new(name, DataType::Boolean, false));
        self.cols.push(Arc::new(BooleanArray::from(v)));
        self
    }
    pub fn build(self) -> RecordBatch {
        RecordBatch::try_new(Arc::new(Schema::new(self.fields)), self.cols)
            .expect("columns of equal length")
    }
}

/// Repeats a per-game value once per row.
fn rep<T: Clone>(rows: &[(usize, usize)], f: impl Fn(usize) -> T) -> Vec<T> {
    rows.iter().map(|&(g, _)| f(g)).collect()
}

pub fn policies(reports: &[GameReport], epoch: u64) -> RecordBatch {
    let rows: Vec<(usize, usize)> = reports
        .iter()
        .enumerate()
        .flat_map(|(g, r)| r.ranking().into_iter().map(move |k| (g, k)))
        .collect();
    let col = |f: &dyn Fn(&GameReport, usize) -> f64| -> Vec<f64> {
        rows.iter().map(|&(g, k)| f(&reports[g], k)).collect()
    };
    let opt = |f: &dyn Fn(&GameReport, usize) -> Option<f64>| -> Vec<Option<f64>> {
        rows.iter().map(|&(g, k)| f(&reports[g], k)).collect()
    };
    let rank: Vec<u64> = reports
        .iter()
        .flat_map(|r| (1..=r.policies.len() as u64).collect::<Vec<_>>())
        .collect();
    let bt = |r: &GameReport, k: usize| r.analysis.bradley_terry.ratings[k];
    Table::default()
        .str("game", rep(&rows, |g| reports[g].game.clone()))
        .u64("epoch", vec![epoch; rows.len()])
        .str(
            "solver",
            rep(&rows, |g| reports[g].solver.name().to_string()),
        )
        .u64("rank", rank)
        .str(
            "policy",
            rows.iter()
                .map(|&(g, k)| reports[g].policies[k].clone())
                .collect(),
        )
        .f64("mass", col(&|r, k| r.analysis.sigma[k]))
        .f64("regret", col(&|r, k| r.analysis.eval.regret[k]))
        .f64(
            "payoff_vs_sigma",
            col(&|r, k| r.analysis.eval.payoff_vs_sigma[k]),
        )
        .f64("games", col(&|r, k| r.analysis.games[k]))
        .opt_f64("win_rate", opt(&|r, k| r.analysis.win_rate[k]))
        .opt_f64("rating", opt(&|r, k| bt(r, k).map(|x| x.rating)))
        .opt_f64("rating_lo", opt(&|r, k| bt(r, k).map(|x| x.lo)))
        .opt_f64("rating_hi", opt(&|r, k| bt(r, k).map(|x| x.hi)))
        .opt_f64("rating_se", opt(&|r, k| bt(r, k).map(|x| x.se)))
        .opt_f64("elo", opt(&|r, k| r.elo.as_ref().map(|e| e[k])))
        .f64("nash_avg", col(&|r, k| r.analysis.nash_avg[k]))
        .f64("uw_vs_sigma", col(&|r, k| r.analysis.vs_sigma.uw[k]))
        .f64("nw_vs_sigma", col(&|r, k| r.analysis.vs_sigma.nw[k]))
        .f64(
            "nw_plus_vs_sigma",
            col(&|r, k| r.analysis.vs_sigma.nw_plus[k]),
        )
        .f64("ef1_vs_sigma", col(&|r, k| r.analysis.vs_sigma.ef1[k]))
        .opt_f64(
            "mass_lo",
            opt(&|r, k| r.analysis.bootstrap.as_ref().map(|b| b.mass[k].lo)),
        )
        .opt_f64(
            "mass_hi",
            opt(&|r, k| r.analysis.bootstrap.as_ref().map(|b| b.mass[k].hi)),
        )
        .opt_f64(
            "regret_lo",
            opt(&|r, k| r.analysis.bootstrap.as_ref().map(|b| b.regret[k].lo)),
        )
        .opt_f64(
            "regret_hi",
            opt(&|r, k| r.analysis.bootstrap.as_ref().map(|b| b.regret[k].hi)),
        )
        .build()
}

pub fn equilibria(reports: &[GameReport], epoch: u64) -> RecordBatch {
    let rows: Vec<(usize, usize)> = reports
        .iter()
        .enumerate()
        .flat_map(|(g, r)| (0..r.policies.len()).map(move |k| (g, k)))
        .collect();
    Table::default()
        .str("game", rep(&rows, |g| reports[g].game.clone()))
        .u64("epoch", vec![epoch; rows.len()])
        .str(
            "solver",
            rep(&rows, |g| reports[g].solver.name().to_string()),
        )
        .str(
            "policy",
            rows.iter()
                .map(|&(g, k)| reports[g].policies[k].clone())
                .collect(),
        )
        .f64(
            "mass",
            rows.iter()
                .map(|&(g, k)| reports[g].analysis.sigma[k])
                .collect(),
        )
        .build()
}

pub fn cells(reports: &[GameReport], epoch: u64) -> RecordBatch {
    let rows: Vec<(usize, usize)> = reports
        .iter()
        .enumerate()
        .flat_map(|(g, r)| (0..r.policies.len().pow(2)).map(move |c| (g, c)))
        .collect();
    let at = |f: &dyn Fn(&GameReport, usize, usize) -> f64| -> Vec<f64> {
        rows.iter()
            .map(|&(g, c)| {
                let n = reports[g].policies.len();
                f(&reports[g], c / n, c % n)
            })
            .collect()
    };
    let known = |r: &GameReport, c: usize| r.analysis.matrices.known[c];
    // CI of the mean from the cell's own matches; imputed cells have none.
    let ci = |lo: bool| -> Vec<Option<f64>> {
        rows.iter()
            .map(|&(g, c)| {
                let r = &reports[g];
                known(r, c).then(|| {
                    let (a, b) = r.cell_ci(c);
                    if lo {
                        a
                    } else {
                        b
                    }
                })
            })
            .collect()
    };
    Table::default()
        .str("game", rep(&rows, |g| reports[g].game.clone()))
        .u64("epoch", vec![epoch; rows.len()])
        .str(
            "policy_i",
            rows.iter()
                .map(|&(g, c)| {
                    let r = &reports[g];
                    r.policies[c / r.policies.len()].clone()
                })
                .collect(),
        )
        .str(
            "policy_j",
            rows.iter()
                .map(|&(g, c)| {
                    let r = &reports[g];
                    r.policies[c % r.policies.len()].clone()
                })
                .collect(),
        )
        .u64(
            "n",
            at(&|r, i, j| r.analysis.matrices.counts[(i, j)])
                .into_iter()
                .map(|x| x as u64)
                .collect(),
        )
        .bool(
            "observed",
            rows.iter().map(|&(g, c)| known(&reports[g], c)).collect(),
        )
        .f64("mean", at(&|r, i, j| r.analysis.matrices.payoff[(i, j)]))
        .opt_f64("ci_lo", ci(true))
        .opt_f64("ci_hi", ci(false))
        .f64("nw", at(&|r, i, j| r.analysis.matrices.nw[(i, j)]))
        .f64(
            "nw_plus",
            at(&|r, i, j| r.analysis.matrices.nw_plus[(i, j)]),
        )
        .f64("ef1", at(&|r, i, j| r.analysis.matrices.ef1[(i, j)]))
        .build()
}

pub fn metrics(reports: &[GameReport], epoch: u64) -> RecordBatch {
    let f = |g: &dyn Fn(&GameReport) -> f64| -> Vec<f64> { reports.iter().map(g).collect() };
    let boot =
        |g: &dyn Fn(&nashflow_kernels::bootstrap::BootstrapResult) -> f64| -> Vec<Option<f64>> {
            reports
                .iter()
                .map(|r| r.analysis.bootstrap.as_ref().map(g))
                .collect()
        };
    Table::default()
        .str("game", reports.iter().map(|r| r.game.clone()).collect())
        .u64("epoch", vec![epoch; reports.len()])
        .str(
            "solver",
            reports
                .iter()
                .map(|r| r.solver.name().to_string())
                .collect(),
        )
        .bool(
            "solver_exact",
            reports.iter().map(|r| r.analysis.solver_exact).collect(),
        )
        .u64(
            "policies",
            reports.iter().map(|r| r.policies.len() as u64).collect(),
        )
        .u64(
            "matches",
            reports.iter().map(|r| r.records as u64).collect(),
        )
        .f64("exploitability", f(&|r| r.analysis.eval.exploitability))
        .f64("value", f(&|r| r.analysis.eval.value))
        .f64("uw", f(&|r| r.analysis.welfare.uw))
        .f64("nw", f(&|r| r.analysis.welfare.nw))
        .f64("nw_plus", f(&|r| r.analysis.welfare.nw_plus))
        .f64("ef1", f(&|r| r.analysis.welfare.ef1))
        .f64("entropy", f(&|r| r.analysis.entropy))
        .u64(
            "support_size",
            reports
                .iter()
                .map(|r| r.analysis.support_size as u64)
                .collect(),
        )
        .f64("solve_seconds", f(&|r| r.analysis.solve_seconds))
        .opt_f64("exploitability_lo", boot(&|b| b.exploitability.lo))
        .opt_f64("exploitability_hi", boot(&|b| b.exploitability.hi))
        .opt_f64("value_lo", boot(&|b| b.value.lo))
        .opt_f64("value_hi", boot(&|b| b.value.hi))
        .build()
}

/// One row of the long-form `lifts` table.
struct LiftRow {
    game: String,
    candidate: String,
    level: &'static str,
    metric: String,
    incumbent: Option<String>,
    value: f64,
}

/// Long form: (game, candidate, level, metric, incumbent, value); level is "1", "2" or
/// "keystone" (the effect of removing the candidate: minus its Level 2 delta).
pub fn lifts(reports: &[GameReport], epoch: u64) -> RecordBatch {
    let mut rows: Vec<LiftRow> = Vec::new();
    for r in reports {
        let p = |k: usize| r.policies[k].clone();
        let mut push = |candidate: usize, level, metric: &str, incumbent: Option<usize>, value| {
            rows.push(LiftRow {
                game: r.game.clone(),
                candidate: p(candidate),
                level,
                metric: metric.to_string(),
                incumbent: incumbent.map(p),
                value,
            })
        };
        for l in &r.analysis.lifts.level1 {
            for (i, x) in &l.per_incumbent {
                push(l.candidate, "1", "partner_lift", Some(*i), *x);
            }
            push(l.candidate, "1", "uniform_avg", None, l.uniform_avg);
            push(l.candidate, "1", "equilibrium_avg", None, l.equilibrium_avg);
            push(l.candidate, "1", "min", None, l.min);
            push(l.candidate, "1", "max", None, l.max);
        }
        for l in &r.analysis.lifts.level2 {
            for (w, x) in WelfareKind::ALL.iter().zip(l.delta_eco) {
                push(
                    l.candidate,
                    "2",
                    &format!("delta_eco_{}", w.name()),
                    None,
                    x,
                );
                push(
                    l.candidate,
                    "keystone",
                    &format!("removal_delta_{}", w.name()),
                    None,
                    -x,
                );
            }
            push(l.candidate, "2", "entry_mass", None, l.entry_mass);
            push(
                l.candidate,
                "2",
                "equilibrium_shift",
                None,
                l.equilibrium_shift,
            );
            for (i, x) in &l.incumbent_shifts {
                push(l.candidate, "2", "incumbent_shift", Some(*i), *x);
            }
            let exact = if l.baseline_exact { 1.0 } else { 0.0 };
            push(l.candidate, "2", "baseline_exact", None, exact);
        }
    }
    Table::default()
        .str("game", rows.iter().map(|r| r.game.clone()).collect())
        .u64("epoch", vec![epoch; rows.len()])
        .str(
            "candidate",
            rows.iter().map(|r| r.candidate.clone()).collect(),
        )
        .str("level", rows.iter().map(|r| r.level.to_string()).collect())
        .str("metric", rows.iter().map(|r| r.metric.clone()).collect())
        .opt_str(
            "incumbent",
            rows.iter().map(|r| r.incumbent.clone()).collect(),
        )
        .f64("value", rows.iter().map(|r| r.value).collect())
        .build()
}

/// One row of the long-form `attribution` table.
struct AttributionRow {
    game: String,
    index: &'static str,
    method: String,
    welfare: &'static str,
    policy: String,
    value: f64,
    se: f64,
}

pub fn attribution(reports: &[GameReport], epoch: u64) -> RecordBatch {
    let mut rows: Vec<AttributionRow> = Vec::new();
    for r in reports {
        let Some(at) = &r.analysis.attribution else {
            continue;
        };
        for (index, vals, ses) in [
            ("shapley", &at.shapley, &at.shapley_se),
            ("banzhaf", &at.banzhaf, &at.banzhaf_se),
        ] {
            for (w, welfare) in WelfareKind::ALL.iter().enumerate() {
                for (k, policy) in r.policies.iter().enumerate() {
                    rows.push(AttributionRow {
                        game: r.game.clone(),
                        index,
                        method: at.method.clone(),
                        welfare: welfare.name(),
                        policy: policy.clone(),
                        value: vals[w][k],
                        se: ses[w][k],
                    });
                }
            }
        }
    }
    Table::default()
        .str("game", rows.iter().map(|r| r.game.clone()).collect())
        .u64("epoch", vec![epoch; rows.len()])
        .str("index", rows.iter().map(|r| r.index.to_string()).collect())
        .str("method", rows.iter().map(|r| r.method.clone()).collect())
        .str(
            "welfare",
            rows.iter().map(|r| r.welfare.to_string()).collect(),
        )
        .str("policy", rows.iter().map(|r| r.policy.clone()).collect())
        .f64("value", rows.iter().map(|r| r.value).collect())
        .f64("se", rows.iter().map(|r| r.se).collect())
        .build()
}

/// Best-response jobs; σ is kept as a JSON object of policy → weight.
pub fn jobs(jobs: &[Job]) -> RecordBatch {
    Table::default()
        .str("job_id", jobs.iter().map(|j| j.job_id.clone()).collect())
        .str("game", jobs.iter().map(|j| j.game.clone()).collect())
        .u64("epoch", jobs.iter().map(|j| j.epoch).collect())
        .str(
            "target_policy",
            jobs.iter().map(|j| j.target_policy.clone()).collect(),
        )
        .f64(
            "exploitability",
            jobs.iter().map(|j| j.exploitability).collect(),
        )
        .f64("threshold", jobs.iter().map(|j| j.threshold).collect())
        .str(
            "sigma",
            jobs.iter()
                .map(|j| serde_json::to_string(&j.sigma).unwrap_or_default())
                .collect(),
        )
        .build()
}

/// `bounds`: one row per cell bound (Manski and MSM; pooled, per stratum, stratified), plus
/// per-policy regret ranges and the exploitability range over the box at each Γ (policy
/// columns null where they do not apply). Empty unless bounds are on.
pub fn bounds(reports: &[GameReport], epoch: u64) -> RecordBatch {
    let mut rows = Vec::new();
    for (g, r) in reports.iter().enumerate() {
        if let Some(b) = &r.analysis.bounds {
            rows.extend(b.rows.iter().map(|row| (g, row)));
        }
    }
    let name = |g: usize, k: Option<usize>| k.map(|k| reports[g].policies[k].clone());
    Table::default()
        .str(
            "game",
            rows.iter().map(|(g, _)| reports[*g].game.clone()).collect(),
        )
        .u64("epoch", vec![epoch; rows.len()])
        .opt_str(
            "policy_i",
            rows.iter().map(|(g, r)| name(*g, r.policy_i)).collect(),
        )
        .opt_str(
            "policy_j",
            rows.iter().map(|(g, r)| name(*g, r.policy_j)).collect(),
        )
        .opt_str(
            "stratum",
            rows.iter().map(|(_, r)| r.stratum.clone()).collect(),
        )
        .str(
            "scope",
            rows.iter()
                .map(|(_, r)| {
                    serde_json::to_value(r.scope)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default()
                })
                .collect(),
        )
        .opt_f64("gamma", rows.iter().map(|(_, r)| r.gamma).collect())
        .str(
            "method",
            rows.iter()
                .map(|(_, r)| r.method.name().to_string())
                .collect(),
        )
        .f64("lo", rows.iter().map(|(_, r)| r.lo).collect())
        .f64("hi", rows.iter().map(|(_, r)| r.hi).collect())
        .u64("n", rows.iter().map(|(_, r)| r.n).collect())
        .build()
}

/// `certificates`: one row per claim (adjacent leaderboard ranks by MSM and, with contexts,
/// by the TV bound; "no profitable deviation from σ" per policy).
pub fn certificates(reports: &[GameReport], epoch: u64) -> RecordBatch {
    let mut rows = Vec::new();
    for (g, r) in reports.iter().enumerate() {
        if let Some(b) = &r.analysis.bounds {
            rows.extend(b.certificates.iter().map(|c| (g, b.certify_gamma, c)));
        }
    }
    let parts: Vec<_> = rows
        .iter()
        .map(|(g, _, c)| crate::causal::claim_parts(c, &reports[*g].policies))
        .collect();
    Table::default()
        .str(
            "game",
            rows.iter()
                .map(|(g, _, _)| reports[*g].game.clone())
                .collect(),
        )
        .u64("epoch", vec![epoch; rows.len()])
        .str(
            "claim",
            rows.iter()
                .map(|(g, _, c)| crate::causal::claim_text(c, &reports[*g].policies))
                .collect(),
        )
        .str("kind", parts.iter().map(|p| p.0.to_string()).collect())
        .str("policy", parts.iter().map(|p| p.1.clone()).collect())
        .opt_str("other", parts.iter().map(|p| p.2.clone()).collect())
        .str(
            "method",
            rows.iter()
                .map(|(_, _, c)| c.method.name().to_string())
                .collect(),
        )
        .f64("naive", rows.iter().map(|(_, _, c)| c.naive).collect())
        .opt_f64(
            "tipping_gamma",
            rows.iter().map(|(_, _, c)| c.tipping_gamma).collect(),
        )
        .bool(
            "certified",
            rows.iter().map(|(_, _, c)| c.certified).collect(),
        )
        .f64("bound", rows.iter().map(|(_, _, c)| c.bound).collect())
        .f64("certify_gamma", rows.iter().map(|(_, g, _)| *g).collect())
        .build()
}

/// Writes the full snapshot (every output table) as `DIR/NAME.parquet`.
pub fn write_snapshot<'a>(
    dir: &Path,
    reports: &[GameReport],
    epoch: u64,
    live: impl IntoIterator<Item = &'a nashflow_schemas::Match>,
    dead_letters: &[nashflow_schemas::RecordError],
    job_list: &[Job],
) -> Result<(), anyhow::Error> {
    let mut out = analysis_tables(reports, epoch);
    out.extend([
        ("matches", nashflow_schemas::arrow_io::matches_batch(live)),
        (
            "dead_letters",
            nashflow_schemas::arrow_io::dead_letters_batch(dead_letters),
        ),
        ("jobs", jobs(job_list)),
    ]);
    write_all(dir, &out).map_err(anyhow::Error::msg)
}

/// The tables computed from the analysis of every game at one epoch.
pub fn analysis_tables(reports: &[GameReport], epoch: u64) -> Vec<(&'static str, RecordBatch)> {
    vec![
        ("policies", policies(reports, epoch)),
        ("cells", cells(reports, epoch)),
        ("metrics", metrics(reports, epoch)),
        ("equilibria", equilibria(reports, epoch)),
        ("lifts", lifts(reports, epoch)),
        ("attribution", attribution(reports, epoch)),
        ("bounds", bounds(reports, epoch)),
        ("certificates", certificates(reports, epoch)),
    ]
}

/// One epoch of the archive: the analysis tables, the epoch's jobs, and its input records
/// with their `epoch` and `position` in the epoch's input (`ORDER BY epoch, position` is
/// the order the run read them in).
pub fn archive_tables<'a>(
    reports: &[GameReport],
    epoch: u64,
    input: impl IntoIterator<Item = &'a nashflow_schemas::Match>,
    job_list: &[Job],
) -> Vec<(&'static str, RecordBatch)> {
    let records = nashflow_schemas::arrow_io::records_batch(input);
    let rows = records.num_rows() as u64;
    let records = nashflow_schemas::arrow_io::append_columns(
        &records,
        vec![
            (
                Field::new("epoch", DataType::UInt64, false),
                Arc::new(UInt64Array::from(vec![epoch; rows as usize])) as ArrayRef,
            ),
            (
                Field::new("position", DataType::UInt64, false),
                Arc::new(UInt64Array::from_iter_values(0..rows)),
            ),
        ],
    );
    let mut out = analysis_tables(reports, epoch);
    out.extend([("jobs", jobs(job_list)), ("records", records)]);
    out
}

/// Writes every table as `DIR/NAME.parquet`.
pub fn write_all(dir: &Path, tables: &[(&str, RecordBatch)]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, batch) in tables {
        write_parquet(&dir.join(format!("{name}.parquet")), batch)?;
    }
    Ok(())
}
