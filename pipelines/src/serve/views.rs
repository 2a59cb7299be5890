//! The JSON views the web page reads: leaderboard and matrix per game, and the per-epoch event.

use serde_json::{json, Value};

use crate::report::{num, GameReport};

/// The leaderboard of one game. Ranks are CI-aware when the streaming bootstrap is on: a
/// policy shares the rank of the one above it when their regret intervals overlap.
pub fn leaderboard(r: &GameReport, epoch: u64) -> Value {
    let a = &r.analysis;
    let order = r.ranking();
    let mut rank = 0;
    let mut rows = Vec::new();
    for (pos, &k) in order.iter().enumerate() {
        let tie = match (&a.bootstrap, pos) {
            (Some(b), p) if p > 0 => b.regret[order[p - 1]].lo <= b.regret[k].hi,
            _ => false,
        };
        if !tie {
            rank = pos + 1;
        }
        let rating = a.bradley_terry.ratings[k].as_ref();
        let cert = a
            .bounds
            .as_ref()
            .and_then(|b| crate::causal::rank_certificate(b, k));
        let rating_cert = a
            .bounds
            .as_ref()
            .and_then(|b| crate::causal::rating_certificate(b, k));
        rows.push(json!({
            "rank": rank,
            "policy": r.policies[k],
            "mass": num(a.sigma[k]),
            "mass_lo": a.bootstrap.as_ref().map(|b| num(b.mass[k].lo)),
            "mass_hi": a.bootstrap.as_ref().map(|b| num(b.mass[k].hi)),
            "regret": num(a.eval.regret[k].max(0.0)),
            "payoff_vs_sigma": num(a.eval.payoff_vs_sigma[k]),
            "rating": rating.map(|x| num(x.rating)),
            "rating_lo": rating.map(|x| num(x.lo)),
            "rating_hi": rating.map(|x| num(x.hi)),
            "games": num(a.games[k]),
            "uw": num(a.vs_sigma.uw[k]),
            "nw": num(a.vs_sigma.nw[k]),
            "ef1": num(a.vs_sigma.ef1[k]),
            "rank_certified": cert.map(|c| c.certified),
            "tipping_gamma": cert.and_then(|c| c.tipping_gamma.map(num)),
            "rating_certified": rating_cert.map(|c| c.certified),
            "rating_tipping_gamma": rating_cert.and_then(|c| c.tipping_gamma.map(num)),
        }));
    }
    json!({
        "game": r.game,
        "epoch": epoch,
        "solver": r.solver.name(),
        "exploitability": num(a.eval.exploitability),
        "value": num(a.eval.value),
        "solve_seconds": num(a.solve_seconds),
        "records": r.records,
        "policies": rows,
    })
}

/// The payoff matrix of one game with counts and per-cell 95% CIs (null where unobserved).
pub fn matrix(r: &GameReport) -> Value {
    let n = r.policies.len();
    let m = &r.analysis.matrices;
    let grid = |f: &dyn Fn(usize, usize) -> Value| -> Value {
        (0..n)
            .map(|i| (0..n).map(|j| f(i, j)).collect::<Vec<_>>())
            .collect::<Vec<_>>()
            .into()
    };
    let ci = |i: usize, j: usize, lo: bool| -> Value {
        r.cells[i * n + j]
            .ci95()
            .map_or(Value::Null, |(l, h)| num(if lo { l } else { h }))
    };
    json!({
        "game": r.game,
        "policies": r.policies,
        "payoff": grid(&|i, j| num(m.payoff[(i, j)])),
        "counts": grid(&|i, j| num(m.counts[(i, j)])),
        "observed": grid(&|i, j| m.known[i * n + j].into()),
        "ci_lo": grid(&|i, j| ci(i, j, true)),
        "ci_hi": grid(&|i, j| ci(i, j, false)),
    })
}

/// The snapshot of one epoch from its reports and the run's tables.
pub fn snapshot(
    reports: &[GameReport],
    epoch: u64,
    extra: Vec<(&'static str, super::live::Table)>,
) -> super::Snapshot {
    let mut tables: Vec<(String, super::live::Table)> =
        crate::tables::analysis_tables(reports, epoch)
            .into_iter()
            .map(|(n, b)| (n.to_string(), super::live::Table::of(b)))
            .collect();
    tables.extend(extra.into_iter().map(|(n, b)| (n.to_string(), b)));
    super::Snapshot {
        epoch: Some(epoch),
        tables,
        leaderboards: reports
            .iter()
            .map(|r| (r.game.clone(), leaderboard(r, epoch)))
            .collect(),
        matrices: reports
            .iter()
            .map(|r| (r.game.clone(), matrix(r)))
            .collect(),
    }
}
