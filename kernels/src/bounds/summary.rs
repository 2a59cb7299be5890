//! A cell's sufficient statistics for the causal bounds: per context stratum the count, the
//! mean payoff and — when every match carries a propensity — the (payoff, propensity)
//! multiset in ascending payoff order, which is all the MSM extreme needs.
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
    pub propensity: Option<f64>,
}

/// The statistics of one stratum of a cell (or of the whole cell).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StratumStats {
    /// `None`: the whole cell (pooled), or the matches without a context inside `strata`.
    pub stratum: Option<String>,
    pub n: u64,
    pub mean: f64,
    /// (payoff, propensity) ascending, present iff every sample carries a propensity.
    pub weighted: Option<Vec<(f64, f64)>>,
}

impl StratumStats {
    /// From samples already sorted by (payoff, propensity).
    fn of(stratum: Option<String>, sorted: &[&BoundSample]) -> StratumStats {
        let n = sorted.len();
        let mean = sorted.iter().map(|s| s.payoff).sum::<f64>() / n as f64;
        let weighted = sorted
            .iter()
            .map(|s| s.propensity.map(|e| (s.payoff, e)))
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
        let mut sorted: Vec<&BoundSample> = samples.iter().collect();
        let by_value = |a: &&BoundSample, b: &&BoundSample| {
            a.payoff.total_cmp(&b.payoff).then(
                a.propensity
                    .unwrap_or(f64::NAN)
                    .total_cmp(&b.propensity.unwrap_or(f64::NAN)),
            )
        };
        sorted.sort_by(by_value);
        let pooled = StratumStats::of(None, &sorted);
        let strata = if sorted.iter().all(|s| s.stratum.is_none()) {
            Vec::new()
        } else {
            let mut by_stratum = sorted.clone();
            by_stratum.sort_by(|a, b| a.stratum.cmp(&b.stratum).then(by_value(a, b)));
            by_stratum
                .chunk_by(|a, b| a.stratum == b.stratum)
                .map(|chunk| StratumStats::of(chunk[0].stratum.clone(), chunk))
                .collect()
        };
        Some(CellSummary {
            pooled,
            strata,
            min: sorted[0].payoff,
            max: sorted[sorted.len() - 1].payoff,
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
