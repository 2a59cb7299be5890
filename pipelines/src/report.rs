//! Rendering one game's analysis as JSON (the `--format json` contract) and as a terminal
//! leaderboard.

use nashflow_kernels::analysis::GameAnalysis;
use nashflow_kernels::bootstrap::Interval;
use nashflow_kernels::metrics::WelfareKind;
use nashflow_kernels::stats::{CellStats, GameMatrices, Missing};
use nashflow_kernels::{Matrix, SolverKind};
use serde_json::{json, Map, Value};

/// Everything reported for one game.
pub struct GameReport {
    pub game: String,
    pub policies: Vec<String>,
    pub records: usize,
    pub solver: SolverKind,
    pub missing: Missing,
    pub analysis: GameAnalysis,
    /// Sequential Elo in arrival order (batch only: it depends on the order of matches).
    pub elo: Option<Vec<f64>>,
    /// Raw cell statistics (row-major), for per-cell confidence intervals.
    pub cells: Vec<CellStats>,
}

/// The hint to print when imputing a game's missing cells turned it from constant-sum into
/// general-sum (the default, column means, rarely keeps the sum): `mene` is then a
/// budgeted search rather than one LP, for σ and for every Level 2 subgame and bootstrap
/// replicate, and `--missing prior=c/2` keeps the game constant-sum.
pub fn imputation_hint(
    game: &str,
    g: &GameMatrices,
    solver: SolverKind,
    missing: Missing,
) -> Option<String> {
    if solver != SolverKind::Mene {
        return None;
    }
    let c = g.imputation_breaks_constant_sum()?;
    let absent = g.known.iter().filter(|&&k| !k).count();
    // Six decimals: the sums carry the fixed-point means' last bits.
    let short = |x: f64| {
        let s = format!("{x:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    };
    Some(format!(
        "hint: game `{game}`: {absent} of {} cells have no matches, and imputing them ({}) makes \
         its constant-sum meta-game (M[i,j] + M[j,i] = {}) general-sum, which `mene` solves by a \
         budgeted search rather than one LP: far slower, and inexact when the budget runs out. \
         `--missing prior={}` keeps it constant-sum.",
        g.known.len(),
        missing,
        short(c),
        short(c / 2.0)
    ))
}

/// A finite number, or null (JSON has no NaN/inf).
pub fn num(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

fn nums(xs: &[f64]) -> Value {
    Value::Array(xs.iter().map(|&x| num(x)).collect())
}

fn matrix(m: &Matrix) -> Value {
    Value::Array(m.to_rows().iter().map(|r| nums(r)).collect())
}

fn interval(i: &Interval) -> Value {
    json!({"lo": num(i.lo), "median": num(i.median), "hi": num(i.hi)})
}

impl GameReport {
    fn by_policy<T>(&self, xs: impl IntoIterator<Item = T>, f: impl Fn(T) -> Value) -> Value {
        let mut m = Map::new();
        for (p, x) in self.policies.iter().zip(xs) {
            m.insert(p.clone(), f(x));
        }
        Value::Object(m)
    }

    pub fn to_json(&self) -> Value {
        let a = &self.analysis;
        let name = |k: usize| self.policies[k].clone();
        let mut level1 = Map::new();
        for l in &a.lifts.level1 {
            let per: Map<String, Value> = l
                .per_incumbent
                .iter()
                .map(|(i, x)| (name(*i), num(*x)))
                .collect();
            level1.insert(
                name(l.candidate),
                json!({
                    "per_incumbent": per,
                    "uniform_avg": num(l.uniform_avg),
                    "equilibrium_avg": num(l.equilibrium_avg),
                    "min": num(l.min),
                    "max": num(l.max),
                }),
            );
        }
        let mut level2 = Map::new();
        for l in &a.lifts.level2 {
            let delta: Map<String, Value> = WelfareKind::ALL
                .iter()
                .zip(l.delta_eco)
                .map(|(w, x)| (w.name().to_string(), num(x)))
                .collect();
            let shifts: Map<String, Value> = l
                .incumbent_shifts
                .iter()
                .map(|(i, x)| (name(*i), num(*x)))
                .collect();
            level2.insert(
                name(l.candidate),
                json!({
                    "delta_eco": delta,
                    "entry_mass": num(l.entry_mass),
                    "equilibrium_shift": num(l.equilibrium_shift),
                    "incumbent_shifts": shifts,
                    "baseline_exact": l.baseline_exact,
                }),
            );
        }
        // Keystone: the effect on each welfare of removing k, beside k's own mass.
        let keystone: Vec<Value> = a
            .lifts
            .level2
            .iter()
            .map(|l| {
                let removal: Map<String, Value> = WelfareKind::ALL
                    .iter()
                    .zip(l.delta_eco)
                    .map(|(w, x)| (w.name().to_string(), num(-x)))
                    .collect();
                json!({"policy": name(l.candidate), "mass": num(l.entry_mass), "removal_delta": removal})
            })
            .collect();
        let level3 = a.attribution.as_ref().map(|at| {
            let per_welfare = |vals: &[Vec<f64>; 3]| -> Value {
                let mut m = Map::new();
                for (w, v) in WelfareKind::ALL.iter().zip(vals) {
                    m.insert(w.name().to_string(), self.by_policy(v.iter(), |x| num(*x)));
                }
                Value::Object(m)
            };
            json!({
                "method": at.method,
                "samples": at.samples,
                "shapley": per_welfare(&at.shapley),
                "banzhaf": per_welfare(&at.banzhaf),
                "shapley_se": per_welfare(&at.shapley_se),
                "banzhaf_se": per_welfare(&at.banzhaf_se),
            })
        });
        let bootstrap = a.bootstrap.as_ref().map(|b| {
            json!({
                "replicates": b.replicates,
                "level": b.level,
                "seed": b.seed,
                "mass": self.by_policy(b.mass.iter(), interval),
                "regret": self.by_policy(b.regret.iter(), interval),
                "value": interval(&b.value),
                "exploitability": interval(&b.exploitability),
                "uw": interval(&b.uw),
                "nw": interval(&b.nw),
                "nw_plus": interval(&b.nw_plus),
                "ef1": interval(&b.ef1),
            })
        });
        let bt = self.by_policy(a.bradley_terry.ratings.iter(), |r| match r {
            Some(r) => {
                json!({"rating": num(r.rating), "se": num(r.se), "lo": num(r.lo), "hi": num(r.hi)})
            }
            None => Value::Null,
        });
        let m = &a.matrices;
        json!({
            "game": self.game,
            "policies": self.policies,
            "matches": self.records,
            "missing": self.missing.to_string(),
            "matrices": {
                "payoff": matrix(&m.payoff),
                "counts": matrix(&m.counts),
                "nw": matrix(&m.nw),
                "nw_plus": matrix(&m.nw_plus),
                "ef1": matrix(&m.ef1),
            },
            "solver": self.solver.name(),
            "solver_exact": a.solver_exact,
            "sigma": nums(&a.sigma),
            "regret": nums(&a.eval.regret),
            "payoff_vs_sigma": nums(&a.eval.payoff_vs_sigma),
            "value": num(a.eval.value),
            "exploitability": num(a.eval.exploitability),
            "entropy": num(a.entropy),
            "support_size": a.support_size,
            "solve_seconds": num(a.solve_seconds),
            "welfare": {
                "value": num(a.welfare.value),
                "uw": num(a.welfare.uw),
                "nw": num(a.welfare.nw),
                "nw_plus": num(a.welfare.nw_plus),
                "ef1": num(a.welfare.ef1),
            },
            "vs_sigma": {
                "uw": nums(&a.vs_sigma.uw),
                "nw": nums(&a.vs_sigma.nw),
                "nw_plus": nums(&a.vs_sigma.nw_plus),
                "ef1": nums(&a.vs_sigma.ef1),
            },
            "games_played": nums(&a.games),
            "win_rate": Value::Array(a.win_rate.iter().map(|w| w.map_or(Value::Null, num)).collect()),
            "level1": level1,
            "level2": level2,
            "keystone": keystone,
            "level3": level3,
            "bootstrap": bootstrap,
            "ratings": {
                "bradley_terry": bt,
                "regularized": a.bradley_terry.regularized,
                "elo": self.elo.as_ref().map(|e| self.by_policy(e.iter(), |x| num(*x))),
                "nash_avg": self.by_policy(a.nash_avg.iter(), |x| num(*x)),
            },
            "causal": a.bounds.as_ref().map(|b| crate::causal::to_json(b, &self.policies)),
        })
    }

    /// Normal 95% CI of the mean of cell `c` (row-major); only meaningful for observed cells.
    pub fn cell_ci(&self, c: usize) -> (f64, f64) {
        self.cells[c].ci95().unwrap_or((f64::NAN, f64::NAN))
    }

    /// Leaderboard order (see [`GameAnalysis::ranking`]).
    pub fn ranking(&self) -> Vec<usize> {
        self.analysis.ranking(&self.policies)
    }

    pub fn to_table(&self) -> String {
        let a = &self.analysis;
        let mut header = vec![
            "rank",
            "policy",
            "mass",
            "regret",
            "payoff vs σ",
            "rating ± 95% CI",
            "games",
            "UW vs σ",
            "NW vs σ",
            "EF1 vs σ",
        ];
        if a.bounds.is_some() {
            header.extend(["Γ-tip", "rating Γ-tip"]);
        }
        let mut rows: Vec<Vec<String>> = Vec::new();
        for (rank, &k) in self.ranking().iter().enumerate() {
            let mass = match &a.bootstrap {
                Some(b) => format!(
                    "{:.3} [{:.2},{:.2}]",
                    a.sigma[k], b.mass[k].lo, b.mass[k].hi
                ),
                None => format!("{:.3}", a.sigma[k]),
            };
            let rating = match &a.bradley_terry.ratings[k] {
                Some(r) => format!("{:.0} ± {:.0}", r.rating, r.hi - r.rating),
                None => "—".into(),
            };
            rows.push(vec![
                (rank + 1).to_string(),
                self.policies[k].clone(),
                mass,
                format!("{:+.4}", a.eval.regret[k].max(0.0)),
                format!("{:.4}", a.eval.payoff_vs_sigma[k]),
                rating,
                format!("{}", a.games[k]),
                format!("{:.4}", a.vs_sigma.uw[k]),
                format!("{:.4}", a.vs_sigma.nw[k]),
                format!("{:.3}", a.vs_sigma.ef1[k]),
            ]);
            if let Some(b) = &a.bounds {
                use crate::causal::{mark, rank_certificate, rating_certificate};
                rows.last_mut().expect("just pushed").extend([
                    mark(b, rank_certificate(b, k)),
                    mark(b, rating_certificate(b, k)),
                ]);
            }
        }
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |cells: Vec<String>| -> String {
            cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(c, (s, w))| {
                    let pad = w - s.chars().count();
                    if c == 1 {
                        format!("{s}{}", " ".repeat(pad))
                    } else {
                        format!("{}{s}", " ".repeat(pad))
                    }
                })
                .collect::<Vec<_>>()
                .join("  ")
        };
        let mut out = String::new();
        out.push_str(&format!(
            "game `{}` — {} policies, {} matches, solver {}, missing cells: {}\n\n",
            self.game,
            self.policies.len(),
            self.records,
            self.solver,
            self.missing
        ));
        out.push_str(&line(header.iter().map(|s| s.to_string()).collect()));
        out.push('\n');
        out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1)));
        out.push('\n');
        for r in rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        let w = &a.welfare;
        out.push_str(&format!(
            "\nexploitability {:.6}   value {:.6}   entropy {:.4} nats   support {}\n\
             welfare at σ: UW {:.6}  NW {:.6}  NW+ {:.6}  EF1 {:.4}   (solve {:.3} s)\n",
            a.eval.exploitability,
            a.eval.value,
            a.entropy,
            a.support_size,
            w.uw,
            w.nw,
            w.nw_plus,
            w.ef1,
            a.solve_seconds
        ));
        if let Some(b) = &a.bootstrap {
            out.push_str(&format!(
                "bootstrap ({} replicates, {:.0}%): exploitability [{:.6}, {:.6}]  value [{:.6}, {:.6}]\n",
                b.replicates,
                b.level * 100.0,
                b.exploitability.lo,
                b.exploitability.hi,
                b.value.lo,
                b.value.hi
            ));
        }
        if let Some(at) = &a.attribution {
            let mut order: Vec<usize> = (0..self.policies.len()).collect();
            order.sort_by(|&x, &y| at.shapley[0][y].total_cmp(&at.shapley[0][x]));
            let top: Vec<String> = order
                .iter()
                .take(5)
                .map(|&k| format!("{} {:+.4}", self.policies[k], at.shapley[0][k]))
                .collect();
            out.push_str(&format!(
                "Shapley (UW, {}): {}\n",
                at.method,
                top.join(", ")
            ));
        }
        if let Some(b) = &a.bounds {
            out.push_str(&crate::causal::summary(b, &self.policies));
        }
        if !a.solver_exact {
            out.push_str(&format!("note: {}\n", self.solver.inexact_reason()));
        }
        let short = a.lifts.level2.iter().filter(|l| !l.baseline_exact).count();
        if short > 0 {
            out.push_str(&format!("note: for {short} of {} Level 2 candidates, on the game without them {} (lifts metric baseline_exact = 0)\n", a.lifts.level2.len(), self.solver.inexact_reason()));
        }
        if a.bradley_terry.regularized {
            out.push_str("ratings: the win graph is not strongly connected; one virtual draw per pair was added\n");
        }
        out
    }
}

/// The `--format json` document for several games: the game object itself for one game, else
/// `{"games": [...]}`; `dead_letters` counts rejected rows.
pub fn document(reports: &[GameReport], dead_letters: usize) -> Value {
    let mut docs: Vec<Value> = reports.iter().map(GameReport::to_json).collect();
    let mut doc = if docs.len() == 1 {
        docs.remove(0)
    } else {
        json!({ "games": docs })
    };
    doc["dead_letters"] = json!(dead_letters);
    doc
}
