//! Groups a log of live matches into per-game kernel inputs. Policies are ordered by name
//! (byte order), which fixes the matrix order of every output.

use std::collections::BTreeMap;

use nashflow_kernels::bootstrap::Unit;
use nashflow_kernels::bounds::{BoundSample, CellSummary};
use nashflow_kernels::stats::{aggregate, CellStats};
use nashflow_schemas::{Layout, Match};

use crate::observe::{bound_samples, observations, replicate_updates, unit};

#[derive(Debug, Clone)]
pub struct GameInput {
    pub game: String,
    pub policies: Vec<String>,
    /// Row-major n×n.
    pub cells: Vec<CellStats>,
    pub units: Vec<Unit>,
    /// (i, j, score of i) per record in arrival order, for Elo (self-play excluded).
    pub results: Vec<(usize, usize, f64)>,
    /// Records that fed this game.
    pub records: usize,
}

/// Splits `matches` (arrival order) by game; games come out in name order.
pub fn group<'a>(matches: impl IntoIterator<Item = &'a Match>, layout: Layout) -> Vec<GameInput> {
    let mut by_game: BTreeMap<&str, Vec<&Match>> = BTreeMap::new();
    for m in matches {
        by_game.entry(m.game.as_str()).or_default().push(m);
    }
    by_game
        .into_iter()
        .map(|(game, ms)| game_input(game, &ms, layout))
        .collect()
}

fn game_input(game: &str, ms: &[&Match], layout: Layout) -> GameInput {
    let mut names: Vec<&str> = ms
        .iter()
        .flat_map(|m| [m.policy_i.as_str(), m.policy_j.as_str()])
        .collect();
    names.sort_unstable();
    names.dedup();
    let index: BTreeMap<&str, usize> = names.iter().enumerate().map(|(k, n)| (*n, k)).collect();
    let n = names.len();
    let mut obs = Vec::with_capacity(ms.len() * 2);
    let mut units = Vec::with_capacity(ms.len());
    let mut results = Vec::new();
    for m in ms {
        let (i, j) = (index[m.policy_i.as_str()], index[m.policy_j.as_str()]);
        obs.extend(observations(m, layout, i, j));
        units.push(unit(m, layout, i, j));
        // In perspective layout each match appears once per seat; count it once for Elo.
        if i != j && (layout == Layout::Match || m.policy_i < m.policy_j) {
            let o = &observations(m, Layout::Perspective, i, j)[0];
            results.push((i, j, o.score));
        }
    }
    GameInput {
        game: game.to_string(),
        policies: names.into_iter().map(String::from).collect(),
        cells: aggregate(n, obs),
        units,
        results,
        records: ms.len(),
    }
}

/// Each policy's matrix index.
fn position_of(policies: &[String]) -> BTreeMap<&str, usize> {
    policies
        .iter()
        .enumerate()
        .map(|(k, p)| (p.as_str(), k))
        .collect()
}

/// Replicate cell tables of the streaming Poisson bootstrap computed in one pass over `matches`
/// of one game (the reference the engine must reproduce): `replicates` row-major n×n tables
/// over `policies`.
pub fn poisson_replicates<'a>(
    matches: impl IntoIterator<Item = &'a Match>,
    layout: Layout,
    policies: &[String],
    replicates: u32,
    seed: u64,
) -> Vec<Vec<CellStats>> {
    let n = policies.len();
    let index = position_of(policies);
    let mut tables = vec![vec![CellStats::default(); n * n]; replicates as usize];
    for m in matches {
        for ((a, b), per_replicate) in replicate_updates(m, layout, replicates, seed) {
            let cell = index[a.as_str()] * n + index[b.as_str()];
            for (table, c) in tables.iter_mut().zip(&per_replicate) {
                table[cell].plus(c);
            }
        }
    }
    tables
}

/// The causal-bound summaries of `game`'s cells over `policies` (row-major n×n, `None` where
/// no match fed the cell), from the live `matches` (other games are skipped).
pub fn bound_cells<'a>(
    matches: impl IntoIterator<Item = &'a Match>,
    layout: Layout,
    game: &str,
    policies: &[String],
) -> Vec<Option<CellSummary>> {
    let n = policies.len();
    let index = position_of(policies);
    let mut samples: Vec<Vec<BoundSample>> = vec![Vec::new(); n * n];
    for m in matches.into_iter().filter(|m| m.game == game) {
        for ((a, b), s) in bound_samples(m, layout) {
            samples[index[a.as_str()] * n + index[b.as_str()]].push(s);
        }
    }
    samples.iter().map(|s| CellSummary::of(s)).collect()
}
