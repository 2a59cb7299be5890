//! Causal bounds at the game level: closed forms, the box, certificates, and coverage of the
//! truth under a confounded matchmaker (issue #7).

use nashflow_kernels::bounds::game::{Claim, Method, Scope};
use nashflow_kernels::bounds::interval::{msm, msm_weights, Interval};
use nashflow_kernels::bounds::{game_bounds, BoundSample, BoundsConfig, CellSummary};
use nashflow_kernels::metrics::evaluate;
use nashflow_kernels::rng::SplitMix64;
use nashflow_kernels::Matrix;

fn sample(stratum: Option<&str>, payoff: f64, propensity: Option<f64>) -> BoundSample {
    BoundSample {
        stratum: stratum.map(String::from),
        payoff,
        score: (payoff > 0.5) as u8 as f64,
        propensity,
    }
}

/// Row-major summaries and the matrix of cell means (0 where empty).
fn game(n: usize, samples: &[Vec<BoundSample>]) -> (Vec<Option<CellSummary>>, Matrix) {
    let cells: Vec<_> = samples.iter().map(|s| CellSummary::of(s)).collect();
    let m = Matrix::from_fn(n, |i, j| {
        cells[i * n + j].as_ref().map_or(0.0, |c| c.pooled.mean)
    });
    (cells, m)
}

fn find(
    rows: &[nashflow_kernels::bounds::BoundRow],
    i: Option<usize>,
    j: Option<usize>,
    scope: Scope,
    method: Method,
    gamma: Option<f64>,
) -> &nashflow_kernels::bounds::BoundRow {
    rows.iter()
        .find(|r| {
            r.policy_i == i
                && r.policy_j == j
                && r.scope == scope
                && r.method == method
                && r.gamma == gamma
                && r.stratum.is_none()
        })
        .unwrap_or_else(|| panic!("no row {i:?} {j:?} {scope:?} {method:?} {gamma:?}"))
}

#[test]
fn manski_on_a_hand_made_log() {
    // Policy 0 met 1 three times (payoffs 1, 1, 0) and 2 once (payoff 0); range [0, 1]
    // declared. Policy 0 never met itself.
    let mut s = vec![Vec::new(); 9];
    s[1] = vec![
        sample(None, 1.0, None),
        sample(None, 1.0, None),
        sample(None, 0.0, None),
    ];
    s[2] = vec![sample(None, 0.0, None)];
    s[3] = vec![sample(None, 0.0, None); 3];
    s[6] = vec![sample(None, 1.0, None)];
    let (cells, m) = game(3, &s);
    let cfg = BoundsConfig {
        range: Some((0.0, 1.0)),
        ..BoundsConfig::default()
    };
    let b = game_bounds(3, &cells, &m, &[1.0 / 3.0; 3], &[0, 1, 2], &[None; 3], &cfg).unwrap();
    // p = 3/4, m = 2/3: [0.5, 0.75].
    let r = find(
        &b.rows,
        Some(0),
        Some(1),
        Scope::Pooled,
        Method::Manski,
        None,
    );
    assert!((r.lo - 0.5).abs() < 1e-12 && (r.hi - 0.75).abs() < 1e-12 && r.n == 3);
    // p = 1/4, m = 0: [0, 0.75].
    let r = find(
        &b.rows,
        Some(0),
        Some(2),
        Scope::Pooled,
        Method::Manski,
        None,
    );
    assert!(r.lo.abs() < 1e-12 && (r.hi - 0.75).abs() < 1e-12);
    // Never met: vacuous, n = 0.
    let r = find(
        &b.rows,
        Some(0),
        Some(0),
        Scope::Pooled,
        Method::Manski,
        None,
    );
    assert_eq!((r.lo, r.hi, r.n), (0.0, 1.0, 0));
    // No propensities: no MSM rows for cells.
    assert!(!b
        .rows
        .iter()
        .any(|r| r.method == Method::Msm && r.policy_j.is_some()));
    // A declared range that excludes a payoff is an error, not a silent clamp.
    let bad = BoundsConfig {
        range: Some((0.0, 0.5)),
        ..BoundsConfig::default()
    };
    let e = game_bounds(3, &cells, &m, &[1.0 / 3.0; 3], &[0, 1, 2], &[None; 3], &bad).unwrap_err();
    assert!(
        e.to_string().contains("outside the declared payoff range"),
        "{e}"
    );
}

/// Random two-policy logs with contexts and propensities.
fn random_log(rng: &mut SplitMix64, with_propensity: bool) -> Vec<Vec<BoundSample>> {
    let strata = ["map1", "map2", "map3"];
    let mut s = vec![Vec::new(); 4];
    for cell in s.iter_mut() {
        for _ in 0..(1 + rng.below(12)) {
            let st = strata[rng.below(3)];
            let e = with_propensity.then(|| 0.1 + 0.9 * rng.next_f64());
            cell.push(sample(Some(st), (rng.next_f64() * 10.0).round() / 10.0, e));
        }
    }
    s
}

#[test]
fn stratified_manski_equals_pooled_and_contains_every_stratum_mix() {
    let mut rng = SplitMix64::new(3);
    for _ in 0..50 {
        let (cells, m) = game(2, &random_log(&mut rng, false));
        let b = game_bounds(
            2,
            &cells,
            &m,
            &[0.5, 0.5],
            &[0, 1],
            &[None; 2],
            &BoundsConfig::default(),
        )
        .unwrap();
        for (i, j) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            let pooled = find(
                &b.rows,
                Some(i),
                Some(j),
                Scope::Pooled,
                Method::Manski,
                None,
            );
            let strat = find(
                &b.rows,
                Some(i),
                Some(j),
                Scope::Stratified,
                Method::Manski,
                None,
            );
            // Σ_s w_s p_s = p and Σ_s w_s m_s p_s = m p: the same interval.
            assert!((pooled.lo - strat.lo).abs() < 1e-9 && (pooled.hi - strat.hi).abs() < 1e-9);
        }
    }
}

#[test]
fn msm_rows_widen_with_gamma_and_start_at_hajek() {
    let mut rng = SplitMix64::new(5);
    for _ in 0..30 {
        let log = random_log(&mut rng, true);
        let (cells, m) = game(2, &log);
        let cfg = BoundsConfig {
            gammas: vec![1.0, 1.5, 3.0],
            ..BoundsConfig::default()
        };
        let b = game_bounds(2, &cells, &m, &[0.5, 0.5], &[0, 1], &[None; 2], &cfg).unwrap();
        for (i, j) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            let pairs: Vec<(f64, f64)> = log[i * 2 + j]
                .iter()
                .map(|s| (s.payoff, s.propensity.unwrap()))
                .collect();
            let hajek = pairs.iter().map(|(y, e)| y / e).sum::<f64>()
                / pairs.iter().map(|(_, e)| 1.0 / e).sum::<f64>();
            let at = |g| {
                find(
                    &b.rows,
                    Some(i),
                    Some(j),
                    Scope::Pooled,
                    Method::Msm,
                    Some(g),
                )
            };
            assert!((at(1.0).lo - hajek).abs() < 1e-9 && (at(1.0).hi - hajek).abs() < 1e-9);
            // Nested up to rounding (a one-match cell is the same point at every Γ).
            let nested = |wide: f64, narrow: f64| {
                at(wide).lo <= at(narrow).lo + 1e-12 && at(wide).hi >= at(narrow).hi - 1e-12
            };
            assert!(nested(1.5, 1.0) && nested(3.0, 1.5));
        }
        // Regret and exploitability bands are nested in Γ as well.
        let ex = |g| {
            find(
                &b.rows,
                None,
                None,
                Scope::Pooled,
                Method::Exploitability,
                Some(g),
            )
        };
        assert!(ex(3.0).lo <= ex(1.5).lo + 1e-9 && ex(3.0).hi >= ex(1.5).hi - 1e-9);
    }
}

#[test]
fn exploitability_range_brackets_every_matrix_in_the_box() {
    let mut rng = SplitMix64::new(9);
    for trial in 0..20 {
        let n = 3;
        let mut s = vec![Vec::new(); n * n];
        for cell in s.iter_mut() {
            for _ in 0..(1 + rng.below(6)) {
                cell.push(sample(
                    None,
                    rng.next_f64() * 4.0 - 2.0,
                    Some(0.2 + 0.8 * rng.next_f64()),
                ));
            }
        }
        let (cells, m) = game(n, &s);
        let sigma = [0.5, 0.3, 0.2];
        let cfg = BoundsConfig {
            gammas: vec![2.0],
            ..BoundsConfig::default()
        };
        let b = game_bounds(n, &cells, &m, &sigma, &[0, 1, 2], &[None; 3], &cfg).unwrap();
        let ex = find(
            &b.rows,
            None,
            None,
            Scope::Pooled,
            Method::Exploitability,
            Some(2.0),
        );
        let boxes: Vec<Interval> = s
            .iter()
            .map(|c| {
                let pairs: Vec<_> = c
                    .iter()
                    .map(|x| (x.payoff, x.propensity.unwrap()))
                    .collect();
                msm(&pairs, 2.0).unwrap()
            })
            .collect();
        // Random points and all vertices of the box: every exploitability lies in [lo, hi],
        // and the sampled extremes come close to the LP / closed-form ends.
        let (mut seen_lo, mut seen_hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for k in 0..(1 << 9) + 4000 {
            let point = Matrix::from_fn(n, |i, j| {
                let b = boxes[i * n + j];
                let t = if k < 1 << 9 {
                    ((k >> (i * n + j)) & 1) as f64
                } else {
                    rng.next_f64()
                };
                b.lo + t * (b.hi - b.lo)
            });
            let e = evaluate(&point, &sigma).exploitability;
            assert!(
                e >= ex.lo - 1e-9 && e <= ex.hi + 1e-9,
                "trial {trial}: {e} ∉ {ex:?}"
            );
            seen_lo = seen_lo.min(e);
            seen_hi = seen_hi.max(e);
        }
        assert!((seen_hi - ex.hi).abs() < 1e-9, "the max is at a vertex");
        assert!(seen_lo - ex.lo < 0.25 * (ex.hi - ex.lo) + 1e-9);
    }
}

#[test]
fn rank_tipping_gamma_is_where_the_contrast_reaches_zero() {
    // a beats b against both opponents, with propensities that vary.
    let mut rng = SplitMix64::new(21);
    let mut s = vec![Vec::new(); 4];
    for (cell, base) in [(0, 0.6), (1, 0.7), (2, 0.3), (3, 0.4)] {
        for _ in 0..40 {
            let y = base + 0.5 * (rng.next_f64() - 0.5);
            s[cell].push(sample(None, y, Some(0.2 + 0.6 * rng.next_f64())));
        }
    }
    let (cells, m) = game(2, &s);
    let sigma = [0.5, 0.5];
    let b = game_bounds(
        2,
        &cells,
        &m,
        &sigma,
        &[0, 1],
        &[None; 2],
        &BoundsConfig::default(),
    )
    .unwrap();
    let cert = b
        .certificates
        .iter()
        .find(|c| c.method == Method::Msm && matches!(c.claim, Claim::RanksAbove { .. }))
        .unwrap();
    let g = cert.tipping_gamma.expect("flips below Γ_max");
    let pairs = |c: usize| -> Vec<(f64, f64)> {
        s[c].iter()
            .map(|x| (x.payoff, x.propensity.unwrap()))
            .collect()
    };
    let lower = |gamma: f64| {
        (0..2)
            .map(|j| {
                let on = msm(&pairs(j), gamma).unwrap();
                let off = msm(&pairs(2 + j), gamma).unwrap();
                sigma[j] * (on.lo - off.hi)
            })
            .sum::<f64>()
    };
    assert!(lower(g) <= 1e-12, "contains 0 at the tipping Γ");
    assert!(lower(g / (1.0 + 1e-5)) > 0.0, "and not just below it");
    assert_eq!(cert.certified, g > 2.0);
}

/// A matchmaker that confounds: a hidden form U of the focal policy raises both its payoff and
/// its chance of being paired with opponent A. The logged propensity is the marginal one.
#[test]
fn msm_bounds_at_the_true_gamma_cover_the_interventional_mean() {
    let (pi1, pi0) = (0.8, 0.4); // P(meet A | U = 1), P(meet A | U = 0); P(U = 1) = 1/2
    let e = 0.5 * (pi1 + pi0);
    let odds = |p: f64| p / (1.0 - p);
    let gamma = (odds(pi1) / odds(e)).max(odds(e) / odds(pi0));
    // The true inverse weights lie in the MSM box at that Γ.
    let (a, b) = msm_weights(e, gamma);
    for p in [pi1, pi0] {
        assert!(1.0 / p >= a - 1e-12 && 1.0 / p <= b + 1e-12);
    }
    let truth = 0.5 * 1.0 + 0.5 * 0.0; // E[Y | do(A)] with μ_A(U) = U
    let (mut covered, mut naive_covered) = (0, 0);
    let seeds = 200;
    for seed in 0..seeds {
        let mut rng = SplitMix64::new(1000 + seed);
        let mut cell = Vec::new();
        for _ in 0..2000 {
            let u = rng.next_f64() < 0.5;
            if rng.next_f64() < if u { pi1 } else { pi0 } {
                let y = if u { 1.0 } else { 0.0 } + 0.5 * (rng.next_f64() - 0.5);
                cell.push((y, e));
            }
        }
        let band = msm(&cell, gamma).unwrap();
        covered += band.contains(truth) as u64;
        let naive = cell.iter().map(|c| c.0).sum::<f64>() / cell.len() as f64;
        naive_covered += ((naive - truth).abs() < 0.02) as u64;
    }
    assert!(covered * 100 >= 95 * seeds, "covered {covered}/{seeds}");
    assert_eq!(naive_covered, 0, "the naive mean is biased here");
}

/// The stratified rows are `Σ_s w_s·bound_s` (w_s = share of row i's observations in s; a
/// stratum where i never met j enters with its Manski bound) with each end clamped into the
/// pooled bound of the same method: recomputed here from the raw samples.
#[test]
fn stratified_bounds_are_the_weighted_strata_clamped_into_the_pooled_bound() {
    use nashflow_kernels::bounds::interval::manski;
    let mut rng = SplitMix64::new(17);
    let (mut clamped, mut checked) = (0, 0);
    for _ in 0..60 {
        let log = random_log(&mut rng, true);
        let (cells, m) = game(2, &log);
        let cfg = BoundsConfig {
            gammas: vec![1.0, 2.0],
            range: Some((0.0, 1.0)),
            ..BoundsConfig::default()
        };
        let b = game_bounds(2, &cells, &m, &[0.5, 0.5], &[0, 1], &[None; 2], &cfg).unwrap();
        for (i, j) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            let row: Vec<&BoundSample> = log[i * 2..i * 2 + 2].iter().flatten().collect();
            let cell = &log[i * 2 + j];
            let in_stratum = |s: &str| -> Vec<(f64, f64)> {
                cell.iter()
                    .filter(|x| x.stratum.as_deref() == Some(s))
                    .map(|x| (x.payoff, x.propensity.unwrap()))
                    .collect()
            };
            let mut strata: Vec<&str> = row.iter().filter_map(|x| x.stratum.as_deref()).collect();
            strata.sort();
            strata.dedup();
            let bound = |gamma: Option<f64>| {
                let parts = strata.iter().map(|s| {
                    let n_row = row
                        .iter()
                        .filter(|x| x.stratum.as_deref() == Some(*s))
                        .count();
                    let here = in_stratum(s);
                    let mean = here.iter().map(|x| x.0).sum::<f64>() / here.len().max(1) as f64;
                    let manski_s = manski(mean, here.len() as f64 / n_row as f64, (0.0, 1.0));
                    let b = match gamma {
                        Some(g) if !here.is_empty() => msm(&here, g).unwrap(),
                        _ => manski_s,
                    };
                    (n_row as f64 / row.len() as f64, b)
                });
                parts.fold(Interval::point(0.0), |acc, (w, b)| {
                    Interval::new(acc.lo + w * b.lo, acc.hi + w * b.hi)
                })
            };
            for gamma in [None, Some(1.0), Some(2.0)] {
                let method = if gamma.is_some() {
                    Method::Msm
                } else {
                    Method::Manski
                };
                let pooled = find(&b.rows, Some(i), Some(j), Scope::Pooled, method, gamma);
                let strat = find(&b.rows, Some(i), Some(j), Scope::Stratified, method, gamma);
                let raw = bound(gamma);
                let clamp = |x: f64| x.clamp(pooled.lo, pooled.hi);
                // Cell means are fixed-point sums (2^-32 per value), as the cells' are.
                assert!(
                    (strat.lo - clamp(raw.lo)).abs() < 1e-9 && (strat.hi - clamp(raw.hi)).abs() < 1e-9,
                    "cell ({i},{j}) Γ {gamma:?}: stratified [{}, {}] vs raw [{}, {}] in pooled [{}, {}]",
                    strat.lo, strat.hi, raw.lo, raw.hi, pooled.lo, pooled.hi
                );
                assert!(pooled.lo <= strat.lo && strat.hi <= pooled.hi && strat.lo <= strat.hi);
                checked += 1;
                clamped += (raw.lo < pooled.lo - 1e-9 || raw.hi > pooled.hi + 1e-9) as u32;
            }
        }
    }
    eprintln!("{checked} stratified rows, {clamped} of them clamped");
    // The clamp matters: the raw MSM mix leaves the pooled interval in finite samples.
    assert!(clamped > 0 && clamped < checked, "{clamped} of {checked}");
}

/// Four policies whose every pair meets in both seats' views of the same matches (cell
/// (b,a) mirrors (a,b): payoff and score 1 − x, same propensity), with unbalanced counts.
fn mirrored_league(rng: &mut SplitMix64, n: usize) -> Vec<Vec<BoundSample>> {
    let strength: Vec<f64> = (0..n)
        .map(|k| 0.4 * k as f64 + 0.3 * rng.next_f64())
        .collect();
    let mut s = vec![Vec::new(); n * n];
    for a in 0..n {
        for b in a + 1..n {
            for _ in 0..(1 + rng.below(40)) {
                let e = 0.05 + 0.9 * rng.next_f64();
                let p = 1.0 / (1.0 + (strength[b] - strength[a]).exp());
                let win = (rng.next_f64() < p) as u8 as f64;
                let mk = |y: f64| BoundSample {
                    stratum: None,
                    payoff: y,
                    score: y,
                    propensity: Some(e),
                };
                s[a * n + b].push(mk(win));
                s[b * n + a].push(mk(1.0 - win));
            }
        }
    }
    s
}

/// Rating certificates judge "a rates above b" on the interventional round robin. Checked
/// against the real Bradley–Terry fit: for score matrices drawn from the box at Γ (constant
/// sum per pair, every pair meeting equally often), BT orders a and b as the score contrast
/// does; the contrast never falls below the certificate's lower end, which the worst vertex
/// attains; and a certified claim holds in every draw.
#[test]
fn rating_certificates_hold_for_every_round_robin_in_the_box() {
    use nashflow_kernels::ratings::bradley_terry;
    let n = 4;
    let mut rng = SplitMix64::new(23);
    let (mut certified, mut uncertified, mut draws) = (0, 0, 0);
    for round in 0..40 {
        let log = mirrored_league(&mut rng, n);
        let (cells, m) = game(n, &log);
        let wins = Matrix::from_fn(n, |i, j| log[i * n + j].iter().map(|x| x.score).sum());
        let observed = bradley_terry(&wins).unwrap();
        let ratings: Vec<Option<f64>> = observed
            .ratings
            .iter()
            .map(|r| r.map(|r| r.rating))
            .collect();
        let gamma = [1.0, 1.3, 2.0][round % 3];
        let cfg = BoundsConfig {
            gammas: vec![gamma],
            range: Some((0.0, 1.0)),
            ..BoundsConfig::default()
        };
        let sigma = vec![1.0 / n as f64; n];
        let b = game_bounds(n, &cells, &m, &sigma, &[0, 1, 2, 3], &ratings, &cfg).unwrap();
        let score_box = |i: usize, j: usize| {
            let pairs: Vec<(f64, f64)> = log[i * n + j]
                .iter()
                .map(|x| (x.score, x.propensity.unwrap()))
                .collect();
            msm(&pairs, gamma).unwrap()
        };
        // The round-robin contrast (mean score against the others) of a over b.
        let contrast = |p: &Matrix, a: usize, b: usize| {
            (0..n).filter(|&k| k != a).map(|k| p[(a, k)]).sum::<f64>()
                - (0..n).filter(|&k| k != b).map(|k| p[(b, k)]).sum::<f64>()
        };
        let round_robin_bt = |p: &Matrix| {
            let w = Matrix::from_fn(n, |i, j| if i == j { 0.0 } else { 1000.0 * p[(i, j)] });
            bradley_terry(&w)
                .unwrap()
                .ratings
                .iter()
                .map(|r| r.unwrap().rating)
                .collect::<Vec<_>>()
        };
        let rating_claims: Vec<_> = b
            .certificates
            .iter()
            .filter_map(|c| match c.claim {
                Claim::RatesAbove { above, below } => Some((above, below, c)),
                _ => None,
            })
            .collect();
        assert_eq!(
            rating_claims.len(),
            n - 1,
            "one claim per adjacent rating pair"
        );
        for &(a, bb, c) in &rating_claims {
            assert!(
                ratings[a] >= ratings[bb] && c.naive == ratings[a].unwrap() - ratings[bb].unwrap()
            );
            // The worst vertex: a's scores at their lower ends, b's at their upper ends.
            let worst = Matrix::from_fn(n, |i, j| match (i == j, i) {
                (true, _) => 0.5,
                (_, x) if x == a => score_box(i, j).lo,
                (_, x) if x == bb => score_box(i, j).hi,
                _ => score_box(i, j).lo,
            });
            let lo = contrast(&worst, a, bb) / (n - 1) as f64;
            assert!(
                (lo - c.bound).abs() < 1e-12,
                "worst vertex {lo} vs bound {}",
                c.bound
            );
            for _ in 0..50 {
                let mut p = Matrix::from_fn(n, |_, _| 0.5);
                for x in 0..n {
                    for y in x + 1..n {
                        let bx = score_box(x, y);
                        p[(x, y)] = bx.lo + rng.next_f64() * bx.width();
                        p[(y, x)] = 1.0 - p[(x, y)];
                    }
                }
                let d = contrast(&p, a, bb);
                let r = round_robin_bt(&p);
                assert!(d / (n - 1) as f64 >= c.bound - 1e-12);
                assert_eq!(
                    d > 0.0,
                    r[a] > r[bb],
                    "BT order = score order in a round robin"
                );
                if c.certified {
                    assert!(
                        r[a] > r[bb],
                        "certified claim fails for a matrix in the box"
                    );
                }
                draws += 1;
            }
            if c.certified {
                certified += 1;
            } else {
                uncertified += 1;
            }
        }
    }
    eprintln!("{certified} certified, {uncertified} not, {draws} draws");
    assert!(
        certified > 0 && uncertified > 0,
        "{certified} / {uncertified}"
    );
}
