//! Which cells a record feeds (DESIGN §4): in match layout both seats (i→j with i's payoff,
//! j→i with j's; a self-play match adds both payoffs to (i,i)); in perspective layout only
//! (policy_i, policy_j).

use nashflow_kernels::bootstrap::{poisson_weights, Unit};
use nashflow_kernels::bounds::BoundSample;
use nashflow_kernels::stats::{win_score, CellStats, Observation, SeatView};
use nashflow_schemas::{Layout, Match};

pub fn seat_view(m: &Match) -> SeatView {
    SeatView {
        payoff_i: m.payoff_i,
        payoff_j: m.payoff_j,
        batna_i: m.batna_i,
        batna_j: m.batna_j,
        agreement: m.agreement,
        ef1: m.ef1,
    }
}

/// The observations of one record, given the matrix indices of its two policies.
pub fn observations(m: &Match, layout: Layout, i: usize, j: usize) -> Observations {
    let v = seat_view(m);
    let first = v.observe(i, j);
    match layout {
        Layout::Match => Observations {
            seats: [first, v.swapped().observe(j, i)],
            len: 2,
        },
        Layout::Perspective => Observations {
            seats: [first; 2],
            len: 1,
        },
    }
}

/// A record's one or two observations, by value: the ingest path makes one per record, so
/// it allocates nothing.
#[derive(Clone, Copy, Debug)]
pub struct Observations {
    seats: [Observation; 2],
    len: usize,
}

impl std::ops::Deref for Observations {
    type Target = [Observation];
    fn deref(&self) -> &[Observation] {
        &self.seats[..self.len]
    }
}

impl IntoIterator for Observations {
    type Item = Observation;
    type IntoIter = std::iter::Take<std::array::IntoIter<Observation, 2>>;
    fn into_iter(self) -> Self::IntoIter {
        self.seats.into_iter().take(self.len)
    }
}

/// The record as a bootstrap unit, stratified by its ordered seat pair.
pub fn unit(m: &Match, layout: Layout, i: usize, j: usize) -> Unit {
    Unit {
        stratum: (i, j),
        obs: observations(m, layout, i, j).to_vec(),
    }
}

/// The cell updates of one record keyed by policy names: ((row policy, column policy), stats).
pub fn cell_updates(m: &Match, layout: Layout) -> Vec<((String, String), CellStats)> {
    // Indices only need to tell self-play apart.
    let j = usize::from(m.policy_i != m.policy_j);
    let obs = observations(m, layout, 0, j);
    obs.iter()
        .map(|o| {
            let (a, b) = if o.row == 0 {
                (&m.policy_i, &m.policy_j)
            } else {
                (&m.policy_j, &m.policy_i)
            };
            ((a.clone(), b.clone()), CellStats::of(o))
        })
        .collect()
}

/// The record's streaming-bootstrap contributions per cell: for each cell it feeds (as in
/// [`cell_updates`]), its statistics scaled by its Poisson(1) weight in each of the
/// `replicates` replicates (index r = replicate r; zero where the weight is 0). One update per
/// cell rather than one per replicate keeps the dataflow's update count independent of the
/// number of replicates.
pub fn replicate_updates(
    m: &Match,
    layout: Layout,
    replicates: u32,
    seed: u64,
) -> Vec<((String, String), Vec<CellStats>)> {
    if replicates == 0 {
        return Vec::new();
    }
    let weights = poisson_weights(seed, &m.match_id, replicates);
    cell_updates(m, layout)
        .into_iter()
        .map(|(cell, c)| (cell, weights.iter().map(|w| c.scaled(*w as i64)).collect()))
        .collect()
}

/// The record's causal-bound samples keyed by policy names: ((row policy, column policy),
/// sample), one per seat that feeds a cell (as in [`cell_updates`]); both seats share the
/// match's context and propensity.
pub fn bound_samples(m: &Match, layout: Layout) -> Vec<((String, String), BoundSample)> {
    let sample = |payoff: f64, other: f64| BoundSample {
        stratum: m.context.as_deref().map(str::to_string),
        payoff,
        score: win_score(payoff, other),
        propensity: m.propensity,
    };
    let mut out = vec![(
        (m.policy_i.clone(), m.policy_j.clone()),
        sample(m.payoff_i, m.payoff_j),
    )];
    if layout == Layout::Match {
        out.push((
            (m.policy_j.clone(), m.policy_i.clone()),
            sample(m.payoff_j, m.payoff_i),
        ));
    }
    out
}
