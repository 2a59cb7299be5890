//! The simulator as a source of `nashflow run` (`--simulate "FLAGS"`, the flags of
//! `nashflow simulate`). It plays one epoch's worth of matches (`--epoch-records`) at a time
//! and waits for the engine to apply them; with `--matchmaker sigma`, the opponent weights are
//! the engine's latest σ for the simulated game, fed back after every epoch (PSRO-style
//! opponent sampling), and every match logs the propensity its matchmaker gave it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use nashflow_kernels::sim::run::play_match;
use nashflow_kernels::sim::Matchmaker;
use nashflow_operators::engine::EpochReport;

use crate::cli::{SimDevice, SimulateArgs};
use crate::run::{Item, ItemSender};
use crate::simulate::{setup, to_match, Setup};

/// What the engine tells the simulator after each epoch.
#[derive(Default)]
pub struct Feedback {
    /// σ of the simulated game in the simulator's policy order (`None` before the first epoch).
    sigma: Mutex<Option<Vec<f64>>>,
    /// Records the engine has applied so far.
    applied: AtomicU64,
}

/// A running simulator source: its population (for the feedback) and the shared state.
pub struct LiveSim {
    names: Vec<String>,
    game_name: String,
    feedback: Arc<Feedback>,
}

#[derive(Parser)]
#[command(no_binary_name = true)]
struct Flags {
    #[command(flatten)]
    args: SimulateArgs,
}

/// Parses the `--simulate` string (whitespace-separated `simulate` flags).
pub fn parse(spec: &str) -> Result<SimulateArgs> {
    let flags = Flags::try_parse_from(spec.split_whitespace()).map_err(|e| {
        let msg = e.render().to_string();
        anyhow::anyhow!(
            "--simulate \"{spec}\": {}",
            msg.trim_start_matches("error: ")
        )
    })?;
    let args = flags.args;
    if args.out.is_some() || args.kafka.is_some() {
        bail!("--simulate: --out and --kafka do not apply; the matches go to the engine");
    }
    if args.device == SimDevice::Cuda {
        bail!("--simulate: --device cuda is for `nashflow simulate`; the live source plays one epoch at a time on the CPU");
    }
    Ok(args)
}

/// Starts the simulator thread; `batch` matches per epoch, `--matches` in all.
pub fn start(spec: &str, batch: u64, tx: ItemSender) -> Result<LiveSim> {
    let args = parse(spec)?;
    let total = args.matches;
    let sim = setup(&args, true).context("--simulate")?;
    let live = LiveSim {
        names: sim.names.clone(),
        game_name: sim.game_name.clone(),
        feedback: Arc::new(Feedback::default()),
    };
    let feedback = live.feedback.clone();
    std::thread::spawn(move || play(sim, total, batch.max(1), &feedback, tx));
    Ok(live)
}

/// Matches per channel hand-off.
const BATCH: usize = crate::run::SOURCE_BATCH;

fn play(sim: Setup, total: u64, batch: u64, feedback: &Feedback, tx: ItemSender) {
    let n = sim.names.len();
    let mut index = 0u64;
    while index < total {
        // One batch in flight: σ for the next batch is the one after the last epoch.
        while feedback.applied.load(Ordering::Acquire) < index {
            std::thread::sleep(Duration::from_millis(1));
        }
        let matchmaker = match (
            &sim.matchmaker,
            feedback.sigma.lock().expect("σ lock").clone(),
        ) {
            (Matchmaker::Sigma { epsilon, .. }, Some(weights)) => Matchmaker::Sigma {
                weights,
                epsilon: *epsilon,
            },
            (m, _) => m.clone(),
        };
        let schedule = matchmaker.schedule(n);
        let end = (index + batch).min(total);
        let source: std::sync::Arc<str> = "simulator".into();
        // In batches: one channel hand-off per batch of matches, not per match.
        let mut items = Vec::with_capacity(BATCH);
        for k in index..end {
            let pairing = schedule.pair(sim.seed, k);
            let m = play_match(&sim.game, sim.seed, k, &pairing);
            let record = to_match(&m, &sim.game_name, &sim.names, sim.seed);
            items.push(Item::Record(record, source.clone(), k));
            if (items.len() == BATCH || k + 1 == end)
                && tx
                    .send(Item::Batch(std::mem::replace(
                        &mut items,
                        Vec::with_capacity(BATCH),
                    )))
                    .is_err()
            {
                return;
            }
        }
        index = end;
    }
}

impl LiveSim {
    /// Feeds an applied epoch back: σ of the simulated game (policies it has not seen yet get
    /// weight 0, the matchmaker's ε floor still samples them) and the applied count.
    pub fn observe(&self, r: &EpochReport) {
        if let Some(s) = r.state.get(&self.game_name) {
            let weights = s.sigma_of(&self.names);
            if weights.iter().sum::<f64>() > 0.0 {
                *self.feedback.sigma.lock().expect("σ lock") = Some(weights);
            }
        }
        self.feedback.applied.store(r.records, Ordering::Release);
    }
}
