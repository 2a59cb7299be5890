//! Interval bounds on one mean or one contrast (DESIGN §6). Each function states its
//! assumption; none of them looks at more than the sample it is given.

use serde::{Deserialize, Serialize};

/// A closed interval `[lo, hi]`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    pub fn new(lo: f64, hi: f64) -> Self {
        Interval { lo, hi }
    }

    pub fn point(x: f64) -> Self {
        Interval { lo: x, hi: x }
    }

    pub fn width(&self) -> f64 {
        self.hi - self.lo
    }

    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }

    /// Each end clamped into `outer`: the intersection when they overlap, else the point of
    /// `outer` nearest to `self`.
    pub fn clamp_into(&self, outer: Interval) -> Interval {
        let clamp = |x: f64| x.clamp(outer.lo, outer.hi);
        Interval::new(clamp(self.lo), clamp(self.hi))
    }
}

/// Manski natural bounds (no assumption beyond the payoff range `[y_min, y_max]`) on
/// E[Y | do(opponent = j)] from `mean` = E[Y | met j] and `share` p = P(met j):
/// `[m·p + y_min·(1−p), m·p + y_max·(1−p)]`. With p = 0 the bound is the whole range.
pub fn manski(mean: f64, share: f64, range: (f64, f64)) -> Interval {
    let (y_min, y_max) = range;
    if share <= 0.0 {
        return Interval::new(y_min, y_max);
    }
    let p = share.min(1.0);
    Interval::new(mean * p + y_min * (1.0 - p), mean * p + y_max * (1.0 - p))
}

/// The weight box of the marginal sensitivity model: a match logged with propensity `e`
/// has true inverse weight in `[1 + (1/Γ)(1/e − 1), 1 + Γ(1/e − 1)]` (Γ ≥ 1).
pub fn msm_weights(e: f64, gamma: f64) -> (f64, f64) {
    let u = odds(e);
    (1.0 + u / gamma, 1.0 + gamma * u)
}

/// The odds `1/e − 1` of a match logged with propensity e: its weight box's spread.
fn odds(e: f64) -> f64 {
    1.0 / e - 1.0
}

/// The Hájek (self-normalised IPW) mean `Σ y/e / Σ 1/e`; `None` for an empty sample.
pub fn hajek(samples: &[(f64, f64)]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let (num, den) = samples
        .iter()
        .fold((0.0, 0.0), |(n, d), &(y, e)| (n + y / e, d + 1.0 / e));
    Some(num / den)
}

/// A sample of (payoff, propensity) pairs in ascending payoff order, ready for its
/// marginal-sensitivity (Tan) bounds at any Γ in O(log n) ([`Weighted::msm`]).
///
/// With odds `u = 1/e − 1`, a pair's weight box is `[1 + u/Γ, 1 + Γu]`. The maximum of the
/// weighted mean `Σ w·y / Σ w` over the box puts the upper weight on the largest payoffs and
/// the lower weight on the first t (a threshold rule; the minimum mirrors it). The mean at
/// threshold t is
///
/// `max: (Y + UY_<t / Γ + Γ·UY_≥t) / (n + U_<t / Γ + Γ·U_≥t)` and
/// `min: (Y + Γ·UY_<t + UY_≥t / Γ) / (n + Γ·U_<t + U_≥t / Γ)`,
///
/// where `U_<t`, `UY_<t` are the sums of u and u·y over the first t pairs, `U_≥t`, `UY_≥t`
/// over the rest, and Y the sum of y: Γ-independent prefix and suffix sums, kept here (both,
/// so that no end is a difference of large sums). Moving the threshold past pair t moves
/// the mean towards y_t or away from it, so the mean improves exactly while `y_t` is below
/// it, and once `y_t` is not, no later pair is (payoffs ascend): the optimum is at the first
/// t with `y_t ≥ mean(t)`, found by bisection. At Γ = 1 the box is a point and both ends
/// equal [`hajek`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Weighted {
    /// The payoffs, ascending.
    payoffs: Vec<f64>,
    /// Compensated sums of u and u·y over the first t pairs (entry t) and over the rest.
    u_before: Vec<f64>,
    u_after: Vec<f64>,
    uy_before: Vec<f64>,
    uy_after: Vec<f64>,
    /// Σ y.
    y: f64,
}

/// A Neumaier-compensated running sum.
#[derive(Clone, Copy, Default)]
struct Compensated {
    sum: f64,
    comp: f64,
}

impl Compensated {
    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        self.comp += if self.sum.abs() >= x.abs() {
            (self.sum - t) + x
        } else {
            (x - t) + self.sum
        };
        self.sum = t;
    }

    fn value(&self) -> f64 {
        self.sum + self.comp
    }
}

impl Weighted {
    /// From pairs in ascending payoff order; `None` when empty.
    pub fn new(pairs: &[(f64, f64)]) -> Option<Weighted> {
        if pairs.is_empty() {
            return None;
        }
        debug_assert!(pairs.windows(2).all(|w| w[0].0 <= w[1].0));
        let n = pairs.len();
        let odds: Vec<f64> = pairs.iter().map(|&(_, e)| odds(e)).collect();
        let mut w = Weighted {
            payoffs: pairs.iter().map(|p| p.0).collect(),
            u_before: vec![0.0; n + 1],
            u_after: vec![0.0; n + 1],
            uy_before: vec![0.0; n + 1],
            uy_after: vec![0.0; n + 1],
            y: 0.0,
        };
        let [mut u, mut uy, mut y] = [Compensated::default(); 3];
        for (t, (&o, &p)) in odds.iter().zip(&w.payoffs).enumerate() {
            u.add(o);
            uy.add(o * p);
            y.add(p);
            w.u_before[t + 1] = u.value();
            w.uy_before[t + 1] = uy.value();
        }
        w.y = y.value();
        let [mut u, mut uy] = [Compensated::default(); 2];
        for (t, (&o, &p)) in odds.iter().zip(&w.payoffs).enumerate().rev() {
            u.add(o);
            uy.add(o * p);
            w.u_after[t] = u.value();
            w.uy_after[t] = uy.value();
        }
        Some(w)
    }

    /// The payoffs, ascending.
    pub fn payoffs(&self) -> &[f64] {
        &self.payoffs
    }

    /// The extremes of the self-normalised weighted mean over the weight box at Γ ≥ 1.
    pub fn msm(&self, gamma: f64) -> Interval {
        let count = self.payoffs.len() as f64;
        let hi = |t: usize| {
            (self.y + self.uy_before[t] / gamma + gamma * self.uy_after[t])
                / (count + self.u_before[t] / gamma + gamma * self.u_after[t])
        };
        let lo = |t: usize| {
            (self.y + gamma * self.uy_before[t] + self.uy_after[t] / gamma)
                / (count + gamma * self.u_before[t] + self.u_after[t] / gamma)
        };
        let hi = self.optimum(&hi, f64::max);
        let lo = self.optimum(&lo, f64::min);
        Interval::new(lo.min(hi), hi.max(lo))
    }

    /// `better` of `mean` over the thresholds: at the first t whose payoff is not below the
    /// mean there (bisection; its neighbours too, against rounding at the crossing).
    fn optimum(&self, mean: &dyn Fn(usize) -> f64, better: fn(f64, f64) -> f64) -> f64 {
        let n = self.payoffs.len();
        let (mut a, mut b) = (0, n);
        while a < b {
            let t = a + (b - a) / 2;
            if self.payoffs[t] < mean(t) {
                a = t + 1;
            } else {
                b = t;
            }
        }
        (a.saturating_sub(1)..=(a + 1).min(n))
            .map(mean)
            .reduce(better)
            .expect("the range holds a")
    }
}

/// Marginal-sensitivity (Tan) bounds at Γ on the self-normalised weighted mean of an unsorted
/// sample of (payoff, propensity) pairs ([`Weighted::msm`]); `None` for an empty sample.
pub fn msm(samples: &[(f64, f64)], gamma: f64) -> Option<Interval> {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    Weighted::new(&sorted).map(|w| w.msm(gamma))
}

/// Bounds on the difference of two arms: `[on.lo − off.hi, on.hi − off.lo]`.
pub fn contrast(on: Interval, off: Interval) -> Interval {
    Interval::new(on.lo - off.hi, on.hi - off.lo)
}

/// The stratified bound `Σ_s w_s · bound_s` (weights summing to 1).
pub fn stratified(parts: &[(f64, Interval)]) -> Interval {
    parts.iter().fold(Interval::point(0.0), |acc, (w, b)| {
        Interval::new(acc.lo + w * b.lo, acc.hi + w * b.hi)
    })
}

/// Where a claim's contrast band first admits the opposite answer.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Tipping {
    /// The smallest Γ (within the search tolerance, rounded up) at which it does.
    At(f64),
    /// It never does up to Γ_max: robust beyond Γ_max.
    Beyond(f64),
}

impl Tipping {
    pub fn gamma(&self) -> Option<f64> {
        match self {
            Tipping::At(g) => Some(*g),
            Tipping::Beyond(_) => None,
        }
    }

    /// The claim holds for every Γ up to `gamma`.
    pub fn robust_at(&self, gamma: f64) -> bool {
        match self {
            Tipping::At(g) => *g > gamma,
            Tipping::Beyond(_) => true,
        }
    }
}

/// Relative tolerance of the tipping-Γ search (on Γ itself).
pub const TIPPING_TOL: f64 = 1e-6;

/// The tipping Γ of the claim "contrast > 0" (`positive`) or "contrast < 0": the smallest
/// Γ ∈ [1, gamma_max] whose band `band(Γ)` contains the opposite answer (lo ≤ 0, resp.
/// hi ≥ 0). `band` must widen monotonically in Γ (nested boxes), which makes bisection on
/// ln Γ exact up to [`TIPPING_TOL`]; the returned Γ is the bracket's upper end.
pub fn tipping_gamma(band: impl Fn(f64) -> Interval, positive: bool, gamma_max: f64) -> Tipping {
    let flipped = |g: f64| {
        let b = band(g);
        if positive {
            b.lo <= 0.0
        } else {
            b.hi >= 0.0
        }
    };
    if flipped(1.0) {
        return Tipping::At(1.0);
    }
    if !flipped(gamma_max) {
        return Tipping::Beyond(gamma_max);
    }
    let (mut lo, mut hi) = (0.0f64, gamma_max.ln());
    while hi - lo > TIPPING_TOL {
        let mid = 0.5 * (lo + hi);
        if flipped(mid.exp()) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Tipping::At(hi.exp())
}

/// Total-variation distance `½ Σ |p − q|` of two distributions on the same strata.
pub fn total_variation(p: &[f64], q: &[f64]) -> f64 {
    0.5 * p.iter().zip(q).map(|(a, b)| (a - b).abs()).sum::<f64>()
}

/// One arm of a two-arm comparison, split by an observed stratum: (count, mean) per stratum,
/// aligned across arms (count 0 where the arm has no data).
#[derive(Clone, Debug, PartialEq)]
pub struct Arm {
    pub strata: Vec<(f64, f64)>,
}

impl Arm {
    pub fn n(&self) -> f64 {
        self.strata.iter().map(|s| s.0).sum()
    }

    pub fn mean(&self) -> f64 {
        self.strata.iter().map(|s| s.0 * s.1).sum::<f64>() / self.n()
    }

    /// P(stratum | arm).
    fn distribution(&self) -> Vec<f64> {
        let n = self.n();
        self.strata.iter().map(|s| s.0 / n).collect()
    }

    /// The span of the arm's stratum means; the whole payoff range when the arm misses a
    /// stratum that the pooled population has (its mean there is unknown).
    fn span(&self, pooled: &[f64], range: (f64, f64)) -> f64 {
        if self
            .strata
            .iter()
            .zip(pooled)
            .any(|(s, p)| s.0 == 0.0 && *p > 0.0)
        {
            return range.1 - range.0;
        }
        let means = self.strata.iter().filter(|s| s.0 > 0.0).map(|s| s.1);
        let (lo, hi) = means.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), m| {
            (l.min(m), h.max(m))
        });
        if hi >= lo {
            hi - lo
        } else {
            0.0
        }
    }
}

/// The omitted-variable (context) certificate of a naive contrast `mean(on) − mean(off)`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TvCertificate {
    pub naive: f64,
    /// `M1·TV(P(Z|on), P(Z)) + M0·TV(P(Z|off), P(Z))`.
    pub bias_bound: f64,
    /// The context-standardised contrast has the naive sign: `bias_bound < |naive|`.
    pub certified: bool,
}

/// Bounds the bias of the naive contrast relative to the contrast standardised to the pooled
/// stratum distribution P(Z) of both arms: `|bias| ≤ M1·TV(P(Z|F=1), P(Z)) +
/// M0·TV(P(Z|F=0), P(Z))`, M_f the span of arm f's stratum means (exact: Σ_s (q_s − p_s) = 0,
/// so |Σ_s (q_s − p_s)·μ_s| ≤ TV(q, p)·span(μ)). Certified iff the bound is below |naive|.
/// `None` when an arm is empty.
pub fn tv_certificate(on: &Arm, off: &Arm, range: (f64, f64)) -> Option<TvCertificate> {
    let (n1, n0) = (on.n(), off.n());
    if n1 <= 0.0 || n0 <= 0.0 {
        return None;
    }
    let pooled: Vec<f64> = on
        .strata
        .iter()
        .zip(&off.strata)
        .map(|(a, b)| (a.0 + b.0) / (n1 + n0))
        .collect();
    let bias_bound = on.span(&pooled, range) * total_variation(&on.distribution(), &pooled)
        + off.span(&pooled, range) * total_variation(&off.distribution(), &pooled);
    let naive = on.mean() - off.mean();
    Some(TvCertificate {
        naive,
        bias_bound,
        certified: bias_bound < naive.abs(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// The extremes of the weighted mean over every vertex of the weight box (2^n of them).
    fn brute_force(samples: &[(f64, f64)], gamma: f64) -> Interval {
        let n = samples.len();
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for mask in 0..(1u32 << n) {
            let (mut num, mut den) = (0.0, 0.0);
            for (k, &(y, e)) in samples.iter().enumerate() {
                let (a, b) = msm_weights(e, gamma);
                let w = if mask >> k & 1 == 1 { b } else { a };
                num += w * y;
                den += w;
            }
            lo = lo.min(num / den);
            hi = hi.max(num / den);
        }
        Interval::new(lo, hi)
    }

    fn random_sample(rng: &mut SplitMix64, n: usize) -> Vec<(f64, f64)> {
        (0..n)
            .map(|_| {
                // Some ties in payoff on purpose.
                let y = (rng.next_f64() * 6.0).floor() - 2.0 + rng.below(2) as f64 * 0.5;
                let e = 0.05 + 0.95 * rng.next_f64();
                (y, e)
            })
            .collect()
    }

    #[test]
    fn manski_closed_form() {
        // m = 0.8 over 30% of i's matches, payoffs in [0, 1].
        let b = manski(0.8, 0.3, (0.0, 1.0));
        assert!((b.lo - 0.24).abs() < 1e-12 && (b.hi - 0.94).abs() < 1e-12);
        assert_eq!(manski(0.8, 0.0, (-1.0, 2.0)), Interval::new(-1.0, 2.0));
        assert_eq!(manski(0.8, 1.0, (-1.0, 2.0)), Interval::point(0.8));
    }

    #[test]
    fn msm_threshold_rule_equals_brute_force_over_vertices() {
        let mut rng = SplitMix64::new(7);
        for trial in 0..300 {
            let n = 1 + trial % 10;
            let s = random_sample(&mut rng, n);
            for gamma in [1.0, 1.3, 2.0, 5.0] {
                let fast = msm(&s, gamma).unwrap();
                let slow = brute_force(&s, gamma);
                assert!(
                    (fast.lo - slow.lo).abs() < 1e-9 && (fast.hi - slow.hi).abs() < 1e-9,
                    "trial {trial} Γ={gamma}: {fast:?} vs {slow:?}"
                );
            }
        }
    }

    /// Every threshold's weighted mean, summed afresh from the weights (O(n) a threshold): the
    /// extremes the bisection must find.
    fn every_threshold(sorted: &[(f64, f64)], gamma: f64) -> Interval {
        let mean = |t: usize, first_upper: bool| {
            let (mut num, mut den) = (0.0, 0.0);
            for (k, &(y, e)) in sorted.iter().enumerate() {
                let (a, b) = msm_weights(e, gamma);
                let w = if (k < t) == first_upper { b } else { a };
                num += w * y;
                den += w;
            }
            num / den
        };
        let n = sorted.len();
        let hi = (0..=n)
            .map(|t| mean(t, false))
            .fold(f64::NEG_INFINITY, f64::max);
        let lo = (0..=n).map(|t| mean(t, true)).fold(f64::INFINITY, f64::min);
        Interval::new(lo, hi)
    }

    /// The bisection over prefix sums finds the best threshold on samples far beyond brute
    /// force: payoffs with ties and a wide magnitude, propensities down to 10⁻⁴.
    #[test]
    fn msm_bisection_equals_every_threshold_scan() {
        let mut rng = SplitMix64::new(23);
        for trial in 0..60 {
            let n = 1 + rng.below(400);
            let scale = [1.0, 1e3, 1e6][trial % 3];
            let mut s: Vec<(f64, f64)> = (0..n)
                .map(|_| {
                    let y = ((rng.next_f64() * 20.0).floor() - 5.0) * scale;
                    let e = if rng.below(4) == 0 {
                        1e-4
                    } else {
                        0.01 + 0.99 * rng.next_f64()
                    };
                    (y, e)
                })
                .collect();
            s.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
            let w = Weighted::new(&s).unwrap();
            for gamma in [1.0, 1.01, 1.5, 3.0, 20.0, 1e3] {
                let (fast, slow) = (w.msm(gamma), every_threshold(&s, gamma));
                let tol = 1e-12 * 15.0 * scale;
                assert!(
                    (fast.lo - slow.lo).abs() <= tol && (fast.hi - slow.hi).abs() <= tol,
                    "trial {trial} n={n} Γ={gamma}: {fast:?} vs {slow:?}"
                );
            }
        }
    }

    #[test]
    fn msm_at_gamma_one_is_hajek_and_widens_monotonically() {
        let mut rng = SplitMix64::new(11);
        for _ in 0..100 {
            let s = random_sample(&mut rng, 25);
            let h = hajek(&s).unwrap();
            let b = msm(&s, 1.0).unwrap();
            assert!((b.lo - h).abs() < 1e-12 && (b.hi - h).abs() < 1e-12);
            let mut last = b;
            for gamma in [1.1, 1.5, 2.0, 3.0, 10.0] {
                let now = msm(&s, gamma).unwrap();
                assert!(now.lo <= last.lo + 1e-12 && now.hi >= last.hi - 1e-12);
                last = now;
            }
        }
    }

    #[test]
    fn contrast_contains_every_difference() {
        let (on, off) = (Interval::new(1.0, 2.0), Interval::new(-0.5, 0.25));
        let c = contrast(on, off);
        assert_eq!(c, Interval::new(0.75, 2.5));
        for a in [1.0, 1.5, 2.0] {
            for b in [-0.5, 0.0, 0.25] {
                assert!(c.contains(a - b));
            }
        }
    }

    #[test]
    fn tipping_gamma_brackets_the_flip() {
        // Band 1 ± 0.5·ln Γ: contains 0 from Γ = e² on.
        let band = |g: f64| Interval::new(1.0 - 0.5 * g.ln(), 1.0 + 0.5 * g.ln());
        let t = tipping_gamma(band, true, 100.0).gamma().unwrap();
        let truth = 2f64.exp();
        assert!(t >= truth && t <= truth * (1.0 + 2.0 * TIPPING_TOL), "{t}");
        assert_eq!(tipping_gamma(band, true, 5.0), Tipping::Beyond(5.0));
        // Already ambiguous at Γ = 1.
        assert_eq!(
            tipping_gamma(|_| Interval::new(-1.0, 1.0), true, 10.0),
            Tipping::At(1.0)
        );
        // A negative claim flips when hi reaches 0.
        let neg = |g: f64| Interval::new(-2.0 - g, -2.0 + g);
        let t = tipping_gamma(neg, false, 10.0).gamma().unwrap();
        assert!((t - 2.0).abs() < 1e-5);
    }

    #[test]
    fn tv_bound_covers_the_standardised_contrast() {
        // Two strata; arm "on" mostly plays the easy stratum.
        let on = Arm {
            strata: vec![(90.0, 1.0), (10.0, 0.2)],
        };
        let off = Arm {
            strata: vec![(20.0, 0.9), (80.0, 0.1)],
        };
        let c = tv_certificate(&on, &off, (0.0, 1.0)).unwrap();
        // P(Z) = (110, 90)/200; standardised contrast uses it for both arms.
        let pz = [110.0 / 200.0, 90.0 / 200.0];
        let adjusted = pz[0] * (1.0 - 0.9) + pz[1] * (0.2 - 0.1);
        assert!((c.naive - adjusted).abs() <= c.bias_bound + 1e-12);
        assert!((c.naive - (0.92 - 0.26)).abs() < 1e-12);
        // TV(on) = 0.35, TV(off) = 0.35; spans 0.8 and 0.8.
        assert!((c.bias_bound - 0.56).abs() < 1e-12);
        assert!(c.certified);
        // An arm missing a stratum uses the whole range as its span.
        let lonely = Arm {
            strata: vec![(50.0, 0.5), (0.0, 0.0)],
        };
        let c = tv_certificate(&lonely, &off, (0.0, 1.0)).unwrap();
        let p1 = 70.0 / 150.0;
        assert!((c.bias_bound - ((1.0 - p1) + 0.8 * (p1 - 20.0 / 100.0))).abs() < 1e-12);
    }
}
