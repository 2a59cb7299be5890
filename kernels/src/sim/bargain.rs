//! The bargaining game (DESIGN §8).
//!
//! * Items: quantities (7, 4, 1). Each player has private integer values 1..100 per item and
//!   a private outside option, uniform in 0..=⌊V/2⌋ where V = Σ q_k v_k is the player's maximum
//!   bundle value.
//! * Alternating offers, player 0 first, at most 3 rounds = 6 actions. 82 actions: offers
//!   `a = 10·o0 + 2·o1 + o2` (0..80), ACCEPT = 80, WALK = 81.
//! * **Offer convention**: an offer (o0, o1, o2) names the share the *proposer keeps*; the
//!   other player gets q − o. ACCEPT accepts the opponent's last offer (illegal when there is
//!   none, i.e. on the first action); the final mover (action 6) may only ACCEPT or WALK.
//! * Payoffs: the value of one's own bundle on agreement, one's outside option on a walk.
//!   Normalised payoffs and outside options divide by the player's V.
//! * EF1 of the final allocation (agreements only): for each player, the value it puts on the
//!   other's bundle minus its own is at most its value of one item in the other's bundle.
//!
//! RNG draw order per match: 3 values of player 0, 3 of player 1 (each `1 + below(100)`), the
//! outside option of player 0 then of player 1 (`below(⌊V/2⌋ + 1)`), then one word per
//! decision of a `random` policy (`below(number of legal actions)`, legal actions listed as
//! the offers ascending, then ACCEPT, then WALK).

use serde::{Deserialize, Serialize};

use super::philox::MatchRng;

pub const QUANTITIES: [u32; 3] = [7, 4, 1];
pub const OFFERS: u8 = 80;
pub const ACCEPT: u8 = 80;
pub const WALK: u8 = 81;
pub const MAX_ACTIONS: usize = 6;

pub fn encode(o: [u32; 3]) -> u8 {
    (10 * o[0] + 2 * o[1] + o[2]) as u8
}

pub fn decode(a: u8) -> [u32; 3] {
    let a = a as u32;
    [a / 10, (a % 10) / 2, a % 2]
}

/// Whether action `a` is legal at `step` (0-based) with or without an offer on the table.
pub fn is_legal(step: usize, has_offer: bool, a: u8) -> bool {
    match a {
        ACCEPT => has_offer && step < MAX_ACTIONS,
        WALK => step < MAX_ACTIONS,
        _ => a < OFFERS && step + 1 < MAX_ACTIONS,
    }
}

/// One match's private information.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Deal {
    pub values: [[u32; 3]; 2],
    pub batna: [u32; 2],
}

impl Deal {
    pub fn draw(rng: &mut MatchRng) -> Deal {
        let mut values = [[0u32; 3]; 2];
        for v in values.iter_mut().flatten() {
            *v = 1 + rng.below(100);
        }
        let mut batna = [0u32; 2];
        for (p, b) in batna.iter_mut().enumerate() {
            *b = rng.below(max_value(&values[p]) / 2 + 1);
        }
        Deal { values, batna }
    }

    /// Player p's value of a bundle.
    pub fn value(&self, p: usize, bundle: [u32; 3]) -> u32 {
        bundle_value(&self.values[p], bundle)
    }
}

fn bundle_value(v: &[u32; 3], b: [u32; 3]) -> u32 {
    v[0] * b[0] + v[1] * b[1] + v[2] * b[2]
}

pub fn max_value(v: &[u32; 3]) -> u32 {
    bundle_value(v, QUANTITIES)
}

pub fn complement(o: [u32; 3]) -> [u32; 3] {
    [
        QUANTITIES[0] - o[0],
        QUANTITIES[1] - o[1],
        QUANTITIES[2] - o[2],
    ]
}

/// EF1 of an allocation (bundles of player 0 and 1) under additive values.
pub fn ef1(values: &[[u32; 3]; 2], alloc: &[[u32; 3]; 2]) -> bool {
    (0..2).all(|p| {
        let (own, other) = (alloc[p], alloc[1 - p]);
        let best_item = (0..3)
            .filter(|&k| other[k] > 0)
            .map(|k| values[p][k])
            .max()
            .unwrap_or(0);
        bundle_value(&values[p], other) <= bundle_value(&values[p], own) + best_item
    })
}

/// A bargaining policy (serialisable spec).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BargainPolicy {
    /// Uniform over the legal actions.
    Random,
    /// Always walks.
    Walk,
    /// Time-dependent concession: at its own turn k ∈ {0, 1, 2} (t = k/2) the target share of
    /// its maximum value is `start − (start − end)·t^(1/beta)` (β < 1 Boulware, β > 1
    /// conceder; start = end gives greedy (1), fair split (0.5) or a threshold acceptor). It
    /// accepts an offer worth at least max(target·V, outside option), else proposes the offer
    /// of least own value meeting that (ties: lowest action), and walks as the final mover.
    Concession { start: f64, end: f64, beta: f64 },
}

/// The names of the bargaining presets.
pub const PRESETS: [&str; 7] = [
    "random",
    "walk",
    "greedy",
    "fair",
    "boulware",
    "conceder",
    "threshold",
];

impl BargainPolicy {
    /// Named presets (see [`PRESETS`]).
    pub fn preset(name: &str) -> Option<BargainPolicy> {
        let c = |start, end, beta| BargainPolicy::Concession { start, end, beta };
        Some(match name {
            "random" => BargainPolicy::Random,
            "walk" => BargainPolicy::Walk,
            "greedy" => c(1.0, 1.0, 1.0),
            "fair" => c(0.5, 0.5, 1.0),
            "boulware" => c(1.0, 0.5, 0.2),
            "conceder" => c(1.0, 0.3, 3.0),
            "threshold" => c(0.6, 0.6, 1.0),
            _ => return None,
        })
    }

    pub fn validate(&self) -> Result<(), String> {
        if let BargainPolicy::Concession { start, end, beta } = *self {
            let unit = |x: f64| (0.0..=1.0).contains(&x);
            if !(unit(start) && unit(end)) {
                return Err(format!(
                    "start and end must be in [0, 1], got {start}, {end}"
                ));
            }
            if !(beta.is_finite() && beta > 0.0) {
                return Err(format!("beta must be positive, got {beta}"));
            }
        }
        Ok(())
    }

    fn decide(
        &self,
        deal: &Deal,
        p: usize,
        step: usize,
        offer: Option<[u32; 3]>,
        rng: &mut MatchRng,
    ) -> u8 {
        let last = step + 1 == MAX_ACTIONS;
        match *self {
            BargainPolicy::Walk => WALK,
            BargainPolicy::Random => {
                let offers = if last { 0 } else { OFFERS as u32 };
                let legal = offers + offer.is_some() as u32 + 1;
                let k = rng.below(legal);
                if k < offers {
                    k as u8
                } else if offer.is_some() && k == offers {
                    ACCEPT
                } else {
                    WALK
                }
            }
            BargainPolicy::Concession { start, end, beta } => {
                let target = concession_target(start, end, beta, step / 2);
                let v = &deal.values[p];
                // Own values are integers: `own ≥ need` ⇔ `own ≥ ⌈need⌉`.
                let need = (target * max_value(v) as f64)
                    .max(deal.batna[p] as f64)
                    .ceil() as u32;
                if let Some(o) = offer {
                    if bundle_value(v, complement(o)) >= need {
                        return ACCEPT;
                    }
                }
                if last {
                    return WALK;
                }
                cheapest_offer(v, need)
            }
        }
    }
}

/// A concession policy's target share at its own turn `turn` ∈ {0, 1, 2} (t = turn/2); only
/// the middle turn needs the power. The device kernels get these values from here.
pub fn concession_target(start: f64, end: f64, beta: f64, turn: usize) -> f64 {
    match turn {
        0 => start,
        2 => end,
        _ => start - (start - end) * 0.5f64.powf(1.0 / beta),
    }
}

/// The offer (own share) of least own value that is worth at least `need`; ties go to the
/// lowest action. Scans in action order (o0, o1, o2 ascending) without decoding; values are
/// ≥ 1, so once (o0, o1, 0) is feasible every larger o1 is worth strictly more and is skipped.
fn cheapest_offer(v: &[u32; 3], need: u32) -> u8 {
    let mut best = (u32::MAX, encode(QUANTITIES));
    for o0 in 0..=QUANTITIES[0] {
        let a0 = v[0] * o0;
        for o1 in 0..=QUANTITIES[1] {
            let a1 = a0 + v[1] * o1;
            if a1 >= need {
                if a1 < best.0 {
                    best = (a1, encode([o0, o1, 0]));
                }
                break;
            }
            let a2 = a1 + v[2];
            if a2 >= need && a2 < best.0 {
                best = (a2, encode([o0, o1, 1]));
            }
        }
    }
    best.1
}

/// How one match ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BargainOutcome {
    pub deal: Deal,
    /// Raw payoffs (bundle value or outside option).
    pub payoff: [u32; 2],
    pub agreement: bool,
    /// Bundles of player 0 and 1 on agreement.
    pub allocation: Option<[[u32; 3]; 2]>,
    /// Actions taken (1..=6); the round it ended is ⌈actions / 2⌉.
    pub actions: u8,
}

impl BargainOutcome {
    pub fn normalized(&self) -> [f64; 2] {
        [0, 1].map(|p| self.payoff[p] as f64 / max_value(&self.deal.values[p]) as f64)
    }

    pub fn normalized_batna(&self) -> [f64; 2] {
        [0, 1].map(|p| self.deal.batna[p] as f64 / max_value(&self.deal.values[p]) as f64)
    }

    pub fn ef1(&self) -> Option<bool> {
        self.allocation.map(|a| ef1(&self.deal.values, &a))
    }

    pub fn round(&self) -> u8 {
        self.actions.div_ceil(2)
    }
}

/// Plays one match: draws the deal, then alternates decisions.
pub fn play(policies: [&BargainPolicy; 2], rng: &mut MatchRng) -> BargainOutcome {
    let deal = Deal::draw(rng);
    // The offer on the table: (proposer, proposer's share).
    let mut table: Option<(usize, [u32; 3])> = None;
    for step in 0..MAX_ACTIONS {
        let p = step % 2;
        let a = policies[p].decide(&deal, p, step, table.map(|t| t.1), rng);
        debug_assert!(is_legal(step, table.is_some(), a), "step {step} action {a}");
        let actions = step as u8 + 1;
        match a {
            ACCEPT => {
                let (proposer, share) = table.expect("ACCEPT needs an offer");
                let mut allocation = [[0; 3]; 2];
                allocation[proposer] = share;
                allocation[1 - proposer] = complement(share);
                return BargainOutcome {
                    deal,
                    payoff: [deal.value(0, allocation[0]), deal.value(1, allocation[1])],
                    agreement: true,
                    allocation: Some(allocation),
                    actions,
                };
            }
            WALK => {
                return BargainOutcome {
                    deal,
                    payoff: deal.batna,
                    agreement: false,
                    allocation: None,
                    actions,
                }
            }
            o => table = Some((p, decode(o))),
        }
    }
    unreachable!("the final mover may only accept or walk")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_80_offers_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for o0 in 0..=7 {
            for o1 in 0..=4 {
                for o2 in 0..=1 {
                    let a = encode([o0, o1, o2]);
                    assert!(a < OFFERS && seen.insert(a));
                    assert_eq!(decode(a), [o0, o1, o2]);
                }
            }
        }
        assert_eq!(seen.len(), 80);
    }

    #[test]
    fn legal_actions_and_the_last_turn() {
        assert!(!is_legal(0, false, ACCEPT) && is_legal(0, false, WALK) && is_legal(0, false, 79));
        assert!(is_legal(3, true, ACCEPT) && is_legal(4, true, 0));
        assert!(!is_legal(5, true, 12) && is_legal(5, true, ACCEPT) && is_legal(5, true, WALK));
        assert!(!is_legal(6, true, WALK));
    }

    #[test]
    fn ef1_on_hand_made_allocations() {
        let v = [[10, 5, 1], [1, 5, 10]];
        // Player 0 holds nothing and values the other bundle at 91 > its best item (10).
        assert!(!ef1(&v, &[[0, 0, 0], QUANTITIES]));
        // No envy at all: 0 has 50 and sees 41; 1 has 23 and sees 14.
        assert!(ef1(&v, &[[4, 2, 0], [3, 2, 1]]));
        // Envy on both sides, each within one item: 0 has 41, sees 50 (≤ 41 + 10);
        // 1 has 14, sees 23 (≤ 14 + 10).
        assert!(ef1(&v, &[[3, 2, 1], [4, 2, 0]]));
        // Player 1 has 10, sees 27 > 10 + 5 (its best item in that bundle).
        assert!(!ef1(&v, &[[7, 4, 0], [0, 0, 1]]));
    }

    #[test]
    fn cheapest_offer_equals_a_scan_of_all_offers() {
        let mut rng = MatchRng::new(8, 8);
        for _ in 0..500 {
            let v = [1 + rng.below(100), 1 + rng.below(100), 1 + rng.below(100)];
            let need = rng.below(max_value(&v) + 1);
            let scan = (0..OFFERS)
                .filter(|&a| bundle_value(&v, decode(a)) >= need)
                .min_by_key(|&a| (bundle_value(&v, decode(a)), a))
                .unwrap();
            assert_eq!(cheapest_offer(&v, need), scan);
        }
    }

    #[test]
    fn walkers_get_their_outside_options_and_replay_is_exact() {
        let walk = BargainPolicy::Walk;
        for index in 0..200 {
            let o = play([&walk, &walk], &mut MatchRng::new(3, index));
            assert!(!o.agreement && o.actions == 1 && o.payoff == o.deal.batna);
            assert_eq!(o.ef1(), None);
            let again = play([&walk, &walk], &mut MatchRng::new(3, index));
            assert_eq!(o, again);
        }
    }

    #[test]
    fn greedy_meets_greedy_and_walks_at_the_end() {
        let g = BargainPolicy::preset("greedy").unwrap();
        let o = play([&g, &g], &mut MatchRng::new(1, 1));
        assert!(!o.agreement && o.actions == 6);
    }

    #[test]
    fn fair_splitters_only_agree_on_at_least_half() {
        let f = BargainPolicy::preset("fair").unwrap();
        for index in 0..100 {
            let o = play([&f, &f], &mut MatchRng::new(9, index));
            // Both sides only ever propose or accept at least half of their own value.
            if o.agreement {
                assert!(o.normalized().iter().all(|&x| x >= 0.5), "{o:?}");
            } else {
                assert_eq!(o.payoff, o.deal.batna);
            }
        }
    }

    #[test]
    fn random_policies_only_play_legal_actions() {
        let r = BargainPolicy::Random;
        for index in 0..2000 {
            let o = play([&r, &r], &mut MatchRng::new(5, index));
            assert!((1..=6).contains(&o.actions));
            if let Some(a) = o.allocation {
                for k in 0..3 {
                    assert_eq!(a[0][k] + a[1][k], QUANTITIES[k]);
                }
            }
        }
    }
}
