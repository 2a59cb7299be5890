//! `nashflow demo`: the PSRO loop on one machine — bargaining simulator → incremental engine →
//! built-in oracle → new policy → simulator, with no external service.
//!
//! Each iteration is one engine epoch holding the matches of the newest policy against the
//! population. The engine's σ (max-entropy Nash of the meta-game) goes to the oracle, which
//! searches the concession family for a best response; that policy joins the population. The
//! printed exploitability is measured on a fixed evaluation sample: the largest gain over σ's
//! value of any policy in a fixed evaluation set (every preset and a grid of concession
//! parameters) or of the oracle's answer, all scored on the same evaluation matches.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use anyhow::{bail, Result};
use nashflow_kernels::analysis::AnalysisConfig;
use nashflow_kernels::sim::bargain::{BargainPolicy, PRESETS};
use nashflow_kernels::sim::oracle::{best_response, payoff_vs, OracleConfig};
use nashflow_kernels::sim::run::play_match;
use nashflow_kernels::sim::{Game, Pairing};
use nashflow_operators::engine::{run_stream, EngineConfig};
use nashflow_operators::trigger::{Job, TriggerConfig};
use nashflow_schemas::{Layout, Match};
use serde::Serialize;

use crate::cli::{DemoArgs, GameKind};
use crate::serve::Shared;
use crate::simulate::{parse_population, to_match};

/// One oracle iteration, as printed.
#[derive(Clone, Debug, Serialize)]
pub struct Iteration {
    pub iteration: usize,
    pub population: usize,
    /// Of σ, on the evaluation sample (see the module docs).
    pub exploitability: f64,
    /// σ's value on the evaluation sample.
    pub value: f64,
    pub new_policy: String,
    /// The new policy's payoff against σ (the σ it answered).
    pub new_payoff: f64,
    pub new_spec: BargainPolicy,
    /// Jobs the engine's trigger emitted in this epoch.
    pub jobs: usize,
}

/// The fixed evaluation set: every preset and a 3×3×3 grid of concession parameters.
pub fn evaluation_set() -> Vec<BargainPolicy> {
    let mut set: Vec<BargainPolicy> = PRESETS
        .iter()
        .map(|p| BargainPolicy::preset(p).expect("preset"))
        .collect();
    for start in [1.0, 0.8, 0.6] {
        for end in [0.6, 0.4, 0.2] {
            for beta in [0.3, 1.0, 3.0] {
                set.push(BargainPolicy::Concession { start, end, beta });
            }
        }
    }
    set
}

/// Exploitability and value of σ over `population` on the evaluation matches of `seed`,
/// counting `extra` (the oracle's answer) among the deviations.
pub fn evaluate_sigma(
    population: &[BargainPolicy],
    sigma: &[f64],
    extra: &BargainPolicy,
    matches: u64,
    seed: u64,
) -> (f64, f64) {
    let value: f64 = population
        .iter()
        .zip(sigma)
        .filter(|(_, s)| **s > 0.0)
        .map(|(p, s)| s * payoff_vs(p, population, sigma, matches, seed))
        .sum();
    let best = evaluation_set()
        .iter()
        .chain([extra])
        .map(|p| payoff_vs(p, population, sigma, matches, seed))
        .fold(f64::NEG_INFINITY, f64::max);
    ((best - value).max(0.0), value)
}

pub fn run(args: &DemoArgs) -> Result<Vec<Iteration>> {
    if args.iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    let (names, game) = parse_population(GameKind::Bargain, &args.policies, Default::default())?;
    let Game::Bargain(initial) = game else {
        unreachable!("bargaining population")
    };
    if !args.no_serve {
        eprintln!(
            "note: the web leaderboard is not built yet (issue #5); running as with --no-serve"
        );
    }
    let game_name = "bargain";
    let seed = args.seed;
    let population = Rc::new(RefCell::new((names, initial)));
    let queue: Rc<RefCell<VecDeque<Vec<Match>>>> = Rc::default();
    let next_index = Rc::new(RefCell::new(0u64));
    // The matches of policies `fresh..` against everyone (both seats), `per_pair` per pair.
    let schedule = {
        let population = population.clone();
        let next_index = next_index.clone();
        let per_pair = args.matches_per_pair;
        move |fresh: usize| -> Vec<Match> {
            let (names, pop) = &*population.borrow();
            let game = Game::Bargain(pop.clone());
            let mut out = Vec::new();
            let mut index = next_index.borrow_mut();
            for i in 0..pop.len() {
                for j in 0..pop.len() {
                    if i < fresh && j < fresh {
                        continue;
                    }
                    // A round-robin design: every opponent equally, propensity 1/n.
                    let pairing = Pairing {
                        i,
                        j,
                        propensity: 1.0 / pop.len() as f64,
                        form: None,
                    };
                    for _ in 0..per_pair {
                        let m = play_match(&game, seed, *index, &pairing);
                        out.push(to_match(&m, game_name, names, seed));
                        *index += 1;
                    }
                }
            }
            out
        }
    };
    queue.borrow_mut().push_back(schedule(0));
    let trigger = TriggerConfig {
        threshold: args.trigger_threshold,
        relative: true,
        hysteresis: 0.5,
        cooldown: 1,
    };
    trigger.validate().map_err(anyhow::Error::msg)?;
    let cfg = EngineConfig {
        trigger: Some(trigger),
        ..EngineConfig::new(
            1,
            Layout::Match,
            AnalysisConfig {
                level3: false,
                ..Default::default()
            },
        )
    };
    let oracle = OracleConfig {
        matches: args.oracle_matches,
        seed: seed ^ 0x5eed,
        ..OracleConfig::default()
    };
    let server = if args.no_serve {
        None
    } else {
        let limits = crate::sql::Limits {
            max_rows: 10_000,
            timeout: std::time::Duration::from_secs(30),
        };
        crate::run::start_server(args.listen.as_deref(), Shared::new(limits, None))?
    };
    let mut tables = crate::run::Published::new(Layout::Match);
    let mut jobs: Vec<Job> = Vec::new();
    let mut iterations = Vec::new();
    let mut failure: Option<String> = None;
    let feed = queue.clone();
    let epochs = std::iter::from_fn(move || feed.borrow_mut().pop_front());
    let total = args.iterations;
    run_stream(epochs, &cfg, |report| {
        if let Some((_, _, reason)) = report.errors.first() {
            failure = Some(reason.clone());
            return;
        }
        let Some(snap) = report.state.get(game_name) else {
            failure = Some("the engine produced no state for the game".into());
            return;
        };
        jobs.extend(report.jobs.iter().cloned());
        if let Some(shared) = &server {
            tables.matches.apply(report.input);
            crate::run::publish(shared, report, &cfg, &tables, &jobs);
        }
        let fresh = {
            let (names, pop) = &*population.borrow();
            let sigma = snap.sigma_of(names);
            if iterations.len() == total {
                return;
            }
            let br = best_response(pop, &sigma, &oracle);
            let (exploitability, value) =
                evaluate_sigma(pop, &sigma, &br.policy, oracle.matches, oracle.seed);
            let it = Iteration {
                iteration: iterations.len() + 1,
                population: pop.len(),
                exploitability,
                value,
                new_policy: format!("br{}", iterations.len() + 1),
                new_payoff: br.payoff,
                new_spec: br.policy,
                jobs: report.jobs.len(),
            };
            println!(
                "iteration {:>2}  population {:>2}  exploitability {:.4}  σ value {:.4}  new policy {} payoff vs σ {:.4}{}",
                it.iteration,
                it.population,
                it.exploitability,
                it.value,
                it.new_policy,
                it.new_payoff,
                if it.jobs > 0 { "  (trigger fired)" } else { "" }
            );
            if let Some(shared) = &server {
                // The PSRO exploitability on the page's timeline (σ itself is never
                // exploitable in its own meta-game).
                shared
                    .timeline
                    .lock()
                    .expect("timeline lock")
                    .push(serde_json::json!({
                        "kind": "psro", "epoch": report.epoch, "game": game_name,
                        "exploitability": it.exploitability,
                    }));
            }
            iterations.push(it);
            pop.len()
        };
        let it = iterations.last().expect("just pushed");
        {
            let (names, pop) = &mut *population.borrow_mut();
            names.push(it.new_policy.clone());
            pop.push(it.new_spec.clone());
        }
        if iterations.len() < total {
            queue.borrow_mut().push_back(schedule(fresh));
        }
    });
    if let Some(reason) = failure {
        bail!("the engine failed: {reason}");
    }
    if server.is_some() {
        eprintln!("demo finished; the page stays up until you stop it (Ctrl-C)");
        loop {
            std::thread::park();
        }
    }
    Ok(iterations)
}
