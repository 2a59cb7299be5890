//! Perspective-layout logs and match-layout logs of the same matches give identical matrices.

use nashflow_kernels::analysis::{analyze_game, AnalysisConfig};
use nashflow_kernels::progress::Silent;
use nashflow_kernels::rng::SplitMix64;
use nashflow_operators::batch::group;
use nashflow_schemas::{Layout, Match};

fn random_matches(count: usize, seed: u64) -> Vec<Match> {
    let names = ["ace", "bolt", "cyan", "dune"];
    let mut r = SplitMix64::new(seed);
    (0..count)
        .map(|k| {
            let (a, b) = (names[r.below(4)], names[r.below(4)]);
            let agreement = r.next_f64() < 0.8;
            let game = if k % 5 == 0 { "second" } else { "main" };
            let (pi, pj) = (
                (r.next_f64() * 10.0).round() / 10.0,
                (r.next_f64() * 10.0).round() / 10.0,
            );
            Match {
                batna_i: Some(0.2),
                batna_j: Some(0.3),
                agreement: Some(agreement),
                ef1: agreement.then(|| r.next_f64() < 0.5),
                ..Match::new(format!("m{k}"), game, a, b, pi, pj)
            }
        })
        .collect()
}

/// Each match as the two rows a per-seat logger writes.
fn perspective_rows(ms: &[Match]) -> Vec<Match> {
    ms.iter()
        .flat_map(|m| {
            let swapped = Match {
                policy_i: m.policy_j.clone(),
                policy_j: m.policy_i.clone(),
                payoff_i: m.payoff_j,
                payoff_j: m.payoff_i,
                batna_i: m.batna_j,
                batna_j: m.batna_i,
                ..m.clone()
            };
            [m.clone(), swapped]
        })
        .collect()
}

#[test]
fn perspective_and_match_layouts_agree() {
    let ms = random_matches(600, 3);
    let by_match = group(&ms, Layout::Match);
    let rows = perspective_rows(&ms);
    let by_seat = group(&rows, Layout::Perspective);
    assert_eq!(by_match.len(), 2);
    let cfg = AnalysisConfig {
        level3: false,
        ..Default::default()
    };
    for (a, b) in by_match.iter().zip(&by_seat) {
        assert_eq!(a.policies, b.policies);
        let n = a.policies.len();
        let ga = analyze_game(n, &a.cells, &a.units, &cfg, &mut Silent).unwrap();
        let gb = analyze_game(n, &b.cells, &b.units, &cfg, &mut Silent).unwrap();
        // Sums are accumulated in a different order, so compare to rounding.
        for (x, y) in [
            (&ga.matrices.payoff, &gb.matrices.payoff),
            (&ga.matrices.counts, &gb.matrices.counts),
            (&ga.matrices.nw, &gb.matrices.nw),
            (&ga.matrices.nw_plus, &gb.matrices.nw_plus),
            (&ga.matrices.ef1, &gb.matrices.ef1),
            (&ga.matrices.score, &gb.matrices.score),
        ] {
            for (u, v) in x.as_slice().iter().zip(y.as_slice()) {
                assert!((u - v).abs() < 1e-12, "{x:?} vs {y:?}");
            }
        }
        for (u, v) in ga.sigma.iter().zip(&gb.sigma) {
            assert!((u - v).abs() < 1e-9);
        }
        assert_eq!(ga.games, gb.games);
    }
}

#[test]
fn decode_bound_matches_fixed_point_bound() {
    assert_eq!(
        nashflow_schemas::decode::MAX_MAGNITUDE,
        nashflow_kernels::stats::MAX_MAGNITUDE
    );
}

/// The engine on per-seat rows: Elo counts each match once (from the row with
/// policy_i < policy_j), in arrival order, as the batch grouping does, for 1 and 2 workers;
/// and it agrees with the match-layout log's Elo up to rounding (the update from the other
/// seat's side is the same arithmetic mirrored).
#[test]
fn engine_elo_in_perspective_layout_equals_batch() {
    use nashflow_kernels::ratings::elo;
    use nashflow_operators::engine::{run, EngineConfig};
    let ms = random_matches(300, 11);
    let rows = perspective_rows(&ms);
    let by_seat = group(&rows, Layout::Perspective);
    let by_match = group(&ms, Layout::Match);
    let epochs: Vec<Vec<Match>> = rows.chunks(37).map(|c| c.to_vec()).collect();
    let cfg = AnalysisConfig {
        level3: false,
        lifts: false,
        ..Default::default()
    };
    for workers in [1, 2] {
        let out = run(
            epochs.clone(),
            &EngineConfig::new(workers, Layout::Perspective, cfg.clone()),
        );
        for (seat, whole) in by_seat.iter().zip(&by_match) {
            let snap = &out.state[&seat.game];
            let n = seat.policies.len();
            assert_eq!(snap.elo, elo(n, seat.results.iter().copied()));
            let want = elo(n, whole.results.iter().copied());
            assert!(snap.elo.iter().any(|&r| r != 1500.0));
            for (a, b) in snap.elo.iter().zip(&want) {
                assert!((a - b).abs() < 1e-9, "{:?} vs {want:?}", snap.elo);
            }
        }
    }
}
