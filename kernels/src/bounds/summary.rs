//! A cell's sufficient statistics for the causal bounds: per context stratum the count, the
//! mean payoff and — when every match carries a propensity — the (payoff, propensity)
//! multiset in ascending payoff order, which is all the MSM extreme needs; and the same for
//! the whole cell's scores (win 1, draw ½, loss 0), which the rating certificates bound.
//!
//! The summary is a function of the multiset of samples alone (means are exact fixed-point
//! sums, as the cells' are; lists are sorted), so the batch path and the streaming engine,
//! which see the samples in different orders, produce bit-identical summaries. Without
//! propensities it needs only counts, sums and the payoff extremes, which [`CellAccumulator`]
//! keeps under additions and removals: the streaming engine then updates a cell's summary
//! in time independent of its history.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::interval::Weighted;
use crate::stats::{fixed_mean, quantize};

/// What one seat of one match contributes to a cell's bounds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoundSample {
    pub stratum: Option<String>,
    pub payoff: f64,
    /// 1 win, ½ draw, 0 loss (payoff compared with the opponent's), as the ratings count it.
    pub score: f64,
    pub propensity: Option<f64>,
}

/// The statistics of one stratum of a cell (or of the whole cell).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StratumStats {
    /// `None`: the whole cell (pooled), or the matches without a context inside `strata`.
    pub stratum: Option<String>,
    pub n: u64,
    pub mean: f64,
    /// (value, propensity) ascending, present iff every sample carries a propensity.
    pub weighted: Option<Weighted>,
}

impl StratumStats {
    /// From (value, propensity) pairs already sorted.
    fn of(stratum: Option<String>, sorted: &[(f64, Option<f64>)]) -> StratumStats {
        let n = sorted.len();
        let sum: i128 = sorted.iter().map(|s| i128::from(quantize(s.0))).sum();
        let weighted = sorted
            .iter()
            .map(|&(y, e)| e.map(|e| (y, e)))
            .collect::<Option<Vec<_>>>()
            .and_then(|pairs| Weighted::new(&pairs));
        StratumStats {
            stratum,
            n: n as u64,
            mean: fixed_mean(n as i64, sum),
            weighted,
        }
    }
}

/// Count and fixed-point sum of some values.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Sum {
    n: i64,
    sum: i128,
}

impl Sum {
    fn add(&mut self, y: f64, count: i64) {
        self.n += count;
        self.sum += i128::from(quantize(y)) * i128::from(count);
    }

    fn stats(&self, stratum: Option<String>) -> StratumStats {
        StratumStats {
            stratum,
            n: self.n as u64,
            mean: fixed_mean(self.n, self.sum),
            weighted: None,
        }
    }
}

/// An f64 as a u64 in the same order as `f64::total_cmp`.
fn ordered(y: f64) -> u64 {
    let b = y.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | 1 << 63
    }
}

fn unordered(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
}

/// A cell's samples as running sums, under additions and removals (counts may be
/// negative): what [`CellSummary`] needs when no sample carries a propensity.
#[derive(Clone, Debug, Default)]
pub struct CellAccumulator {
    pooled: Sum,
    score: Sum,
    strata: BTreeMap<Option<String>, Sum>,
    /// Payoff multiset (in [`ordered`] keys), for the extremes.
    payoffs: BTreeMap<u64, i64>,
    /// Samples that carry a propensity.
    with_propensity: i64,
}

impl CellAccumulator {
    /// Adds `count` copies of `s` (a negative count removes them).
    pub fn add(&mut self, s: &BoundSample, count: i64) {
        self.pooled.add(s.payoff, count);
        self.score.add(s.score, count);
        // Looked up before inserting: a sample's stratum is usually there already.
        let stratum = match self.strata.get_mut(&s.stratum) {
            Some(stratum) => stratum,
            None => self.strata.entry(s.stratum.clone()).or_default(),
        };
        stratum.add(s.payoff, count);
        if stratum.n == 0 {
            self.strata.remove(&s.stratum);
        }
        let k = ordered(s.payoff);
        let c = self.payoffs.entry(k).or_default();
        *c += count;
        if *c == 0 {
            self.payoffs.remove(&k);
        }
        if s.propensity.is_some() {
            self.with_propensity += count;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.pooled.n == 0
    }

    /// The summary, equal to [`CellSummary::of`] over the samples held; `None` when the cell
    /// is empty or some sample carries a propensity (the MSM bounds then need the sorted
    /// samples themselves: use [`CellSummary::of`]).
    pub fn summary(&self) -> Option<CellSummary> {
        if self.is_empty() || self.with_propensity != 0 {
            return None;
        }
        let strata = if self.strata.keys().all(Option::is_none) {
            Vec::new()
        } else {
            self.strata
                .iter()
                .map(|(stratum, sum)| sum.stats(stratum.clone()))
                .collect()
        };
        Some(CellSummary {
            pooled: self.pooled.stats(None),
            score: self.score.stats(None),
            strata,
            min: unordered(*self.payoffs.keys().next().expect("not empty")),
            max: unordered(*self.payoffs.keys().next_back().expect("not empty")),
        })
    }
}

/// A cell's summary: pooled statistics, per-stratum statistics (empty when no sample has a
/// context), and the payoff extremes (for the observed payoff range).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellSummary {
    pub pooled: StratumStats,
    /// The whole cell's scores instead of payoffs.
    pub score: StratumStats,
    /// Sorted by stratum (`None` first).
    pub strata: Vec<StratumStats>,
    pub min: f64,
    pub max: f64,
}

impl CellSummary {
    /// `None` for an empty cell.
    pub fn of(samples: &[BoundSample]) -> Option<CellSummary> {
        if samples.is_empty() {
            return None;
        }
        if samples.iter().all(|s| s.propensity.is_none()) {
            let mut acc = CellAccumulator::default();
            for s in samples {
                acc.add(s, 1);
            }
            return acc.summary();
        }
        // (stratum, value, propensity) sorted by value then propensity (missing last).
        let sorted_by = |value: fn(&BoundSample) -> f64| {
            let mut v: Vec<(&Option<String>, f64, Option<f64>)> = samples
                .iter()
                .map(|s| (&s.stratum, value(s), s.propensity))
                .collect();
            v.sort_by(|a, b| {
                a.1.total_cmp(&b.1)
                    .then(a.2.unwrap_or(f64::NAN).total_cmp(&b.2.unwrap_or(f64::NAN)))
            });
            v
        };
        let pairs = |v: &[(&Option<String>, f64, Option<f64>)]| -> Vec<(f64, Option<f64>)> {
            v.iter().map(|&(_, y, e)| (y, e)).collect()
        };
        let sorted = sorted_by(|s| s.payoff);
        let pooled = StratumStats::of(None, &pairs(&sorted));
        let score = StratumStats::of(None, &pairs(&sorted_by(|s| s.score)));
        let strata = if sorted.iter().all(|s| s.0.is_none()) {
            Vec::new()
        } else {
            // A stable sort keeps the value order inside each stratum.
            let mut by_stratum = sorted.clone();
            by_stratum.sort_by(|a, b| a.0.cmp(b.0));
            by_stratum
                .chunk_by(|a, b| a.0 == b.0)
                .map(|chunk| StratumStats::of(chunk[0].0.clone(), &pairs(chunk)))
                .collect()
        };
        Some(CellSummary {
            pooled,
            score,
            strata,
            min: sorted[0].1,
            max: sorted[sorted.len() - 1].1,
        })
    }

    /// The statistics of stratum `s`, if the cell has matches there.
    pub fn stratum(&self, s: &Option<String>) -> Option<&StratumStats> {
        if self.strata.is_empty() {
            return s.is_none().then_some(&self.pooled);
        }
        self.strata
            .binary_search_by(|x| x.stratum.cmp(s))
            .ok()
            .map(|k| &self.strata[k])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(stratum: Option<&str>, payoff: f64, propensity: Option<f64>) -> BoundSample {
        BoundSample {
            stratum: stratum.map(String::from),
            payoff,
            score: (payoff > 0.0) as u8 as f64,
            propensity,
        }
    }

    #[test]
    fn order_of_samples_does_not_matter() {
        let mut s = vec![
            sample(Some("b"), 0.3, Some(0.5)),
            sample(Some("a"), 0.1, Some(0.2)),
            sample(None, 0.7, Some(0.9)),
            sample(Some("a"), -0.4, Some(0.25)),
        ];
        let one = CellSummary::of(&s).unwrap();
        s.reverse();
        assert_eq!(CellSummary::of(&s).unwrap(), one);
        assert_eq!(one.strata.len(), 3);
        assert_eq!(one.strata[0].stratum, None);
        assert_eq!(one.stratum(&Some("a".into())).unwrap().n, 2);
        assert_eq!(
            one.pooled.weighted.as_ref().unwrap().payoffs()[0],
            -0.4,
            "ascending by payoff"
        );
        assert_eq!((one.min, one.max), (-0.4, 0.7));
        let scores: Vec<f64> = one.score.weighted.as_ref().unwrap().payoffs().to_vec();
        assert_eq!(scores, [0.0, 1.0, 1.0, 1.0], "ascending by score");
        assert_eq!((one.score.n, one.score.mean), (4, 0.75));
    }

    /// Samples added and removed in any order leave the summary of the remaining multiset,
    /// bit for bit (the streaming engine's path against the batch one).
    #[test]
    fn accumulator_equals_the_summary_of_what_remains() {
        let mut r = crate::rng::SplitMix64::new(5);
        let strata = [None, Some("x"), Some("y")];
        let mut acc = CellAccumulator::default();
        let mut held: Vec<BoundSample> = Vec::new();
        for step in 0..2000 {
            if held.is_empty() || r.below(3) > 0 {
                let payoff = (r.next_f64() - 0.3) * 7.0;
                let s = BoundSample {
                    stratum: strata[r.below(if step < 1000 { 1 } else { 3 })].map(String::from),
                    payoff,
                    score: [0.0, 0.5, 1.0][r.below(3)],
                    propensity: None,
                };
                acc.add(&s, 1);
                held.push(s);
            } else {
                let s = held.swap_remove(r.below(held.len()));
                acc.add(&s, -1);
            }
            let got = acc.summary();
            assert_eq!(got, CellSummary::of(&held), "step {step}");
            // And against the plain definitions.
            if let Some(c) = got {
                let n = held.len() as f64;
                let mean = held.iter().map(|s| s.payoff).sum::<f64>() / n;
                let score = held.iter().map(|s| s.score).sum::<f64>() / n;
                assert_eq!(c.pooled.n as usize, held.len());
                assert!(
                    (c.pooled.mean - mean).abs() < 1e-9,
                    "{} {mean}",
                    c.pooled.mean
                );
                assert!((c.score.mean - score).abs() < 1e-12);
                let min = held.iter().map(|s| s.payoff).fold(f64::INFINITY, f64::min);
                let max = held
                    .iter()
                    .map(|s| s.payoff)
                    .fold(f64::NEG_INFINITY, f64::max);
                assert_eq!((c.min, c.max), (min, max));
                let counted: u64 = c.strata.iter().map(|t| t.n).sum();
                assert!(c.strata.is_empty() || counted as usize == held.len());
            }
        }
        let with = BoundSample {
            propensity: Some(0.5),
            ..held[0].clone()
        };
        acc.add(&with, 1);
        assert!(acc.summary().is_none(), "propensities need the samples");
        let mut ordered_keys: Vec<f64> = held.iter().map(|s| s.payoff).collect();
        ordered_keys.push(-0.0);
        ordered_keys.push(0.0);
        ordered_keys.sort_by_key(|y| ordered(*y));
        assert!(ordered_keys
            .windows(2)
            .all(|w| w[0].total_cmp(&w[1]).is_le()));
        assert!(ordered_keys
            .iter()
            .all(|&y| unordered(ordered(y)).to_bits() == y.to_bits()));
    }

    #[test]
    fn a_missing_propensity_disables_msm_for_its_stratum_only() {
        let s = vec![
            sample(Some("a"), 1.0, Some(0.5)),
            sample(Some("b"), 2.0, None),
        ];
        let c = CellSummary::of(&s).unwrap();
        assert!(c.pooled.weighted.is_none());
        assert!(c.stratum(&Some("a".into())).unwrap().weighted.is_some());
        assert!(c.stratum(&Some("b".into())).unwrap().weighted.is_none());
        assert!(CellSummary::of(&[]).is_none());
    }
}
