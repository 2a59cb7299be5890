//! A cell's sufficient statistics for the causal bounds: per context stratum the count, the
//! mean payoff and — when every match carries a propensity — the (payoff, propensity)
//! multiset in ascending payoff order, which is all the MSM extreme needs; and the same for
//! the whole cell's scores (win 1, draw ½, loss 0), which the rating certificates bound.
//!
//! The summary is a function of the multiset of samples alone (it sorts before it sums), so
//! the batch path and the streaming engine, which see the samples in different orders,
//! produce bit-identical summaries.

use serde::{Deserialize, Serialize};

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
    pub weighted: Option<Vec<(f64, f64)>>,
}

impl StratumStats {
    /// From (value, propensity) pairs already sorted.
    fn of(stratum: Option<String>, sorted: &[(f64, Option<f64>)]) -> StratumStats {
        let n = sorted.len();
        let mean = sorted.iter().map(|s| s.0).sum::<f64>() / n as f64;
        let weighted = sorted
            .iter()
            .map(|&(y, e)| e.map(|e| (y, e)))
            .collect::<Option<Vec<_>>>();
        StratumStats {
            stratum,
            n: n as u64,
            mean,
            weighted,
        }
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
            one.pooled.weighted.as_ref().unwrap()[0],
            (-0.4, 0.25),
            "ascending by payoff"
        );
        assert_eq!((one.min, one.max), (-0.4, 0.7));
        let scores: Vec<f64> = one
            .score
            .weighted
            .as_ref()
            .unwrap()
            .iter()
            .map(|w| w.0)
            .collect();
        assert_eq!(scores, [0.0, 1.0, 1.0, 1.0], "ascending by score");
        assert_eq!((one.score.n, one.score.mean), (4, 0.75));
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
