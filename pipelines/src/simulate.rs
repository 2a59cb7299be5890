//! `nashflow simulate`: batched matches of the built-in games written as a match log
//! (JSON Lines or Parquet) that `analyze` and `run` read, or produced to a Kafka topic.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use arrow::array::{ArrayRef, UInt32Array};
use arrow::datatypes::{DataType, Field};
use nashflow_connectors::kafka::Writer;
use nashflow_kernels::sim::bargain::BargainPolicy;
use nashflow_kernels::sim::battle::{BattleConfig, BattlePolicy};
use nashflow_kernels::sim::{simulate, Game, Matchmaker, SimConfig, SimMatch, Simulation};
use nashflow_kernels::stats::{impute, Missing};
use nashflow_schemas::Match;
use serde_json::Value;

use crate::cli::{GameKind, SimDevice, SimulateArgs};

/// Parses `--policies`: a comma list of presets (`NAME` or `ALIAS=PRESET`), an inline JSON
/// array, or a JSON file holding one; JSON items are `{"name": …, <spec fields>}`.
pub fn parse_population(
    kind: GameKind,
    spec: &str,
    battle: BattleConfig,
) -> Result<(Vec<String>, Game)> {
    let trimmed = spec.trim();
    let json: Option<Value> = if trimmed.starts_with('[') {
        Some(serde_json::from_str(trimmed).context("--policies: inline JSON")?)
    } else if std::path::Path::new(trimmed).is_file() {
        let text =
            std::fs::read_to_string(trimmed).with_context(|| format!("reading {trimmed}"))?;
        Some(serde_json::from_str(&text).with_context(|| format!("{trimmed}: not JSON"))?)
    } else {
        None
    };
    let mut names = Vec::new();
    let mut bargain = Vec::new();
    let mut battle_pop = Vec::new();
    match json {
        Some(Value::Array(items)) => {
            for (k, item) in items.into_iter().enumerate() {
                let name = item
                    .get("name")
                    .and_then(Value::as_str)
                    .map(String::from)
                    .unwrap_or_else(|| format!("p{k}"));
                let err = |e: String| anyhow::anyhow!("--policies item {k} (`{name}`): {e}");
                match kind {
                    GameKind::Bargain => {
                        let p: BargainPolicy =
                            serde_json::from_value(item.clone()).map_err(|e| err(e.to_string()))?;
                        p.validate().map_err(err)?;
                        bargain.push(p);
                    }
                    GameKind::Battle => {
                        let p: BattlePolicy =
                            serde_json::from_value(item.clone()).map_err(|e| err(e.to_string()))?;
                        battle_pop.push(p.normalized().map_err(err)?);
                    }
                }
                names.push(name);
            }
        }
        Some(_) => bail!("--policies: expected a JSON array of policy specs"),
        None => {
            for item in trimmed.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (name, preset) = item.split_once('=').unwrap_or((item, item));
                let unknown = |list: &str| {
                    anyhow::anyhow!(
                        "--policies: unknown {} preset `{preset}`; presets: {list}",
                        kind.name()
                    )
                };
                match kind {
                    GameKind::Bargain => {
                        bargain.push(BargainPolicy::preset(preset).ok_or_else(|| {
                            unknown("random, walk, greedy, fair, boulware, conceder, threshold")
                        })?)
                    }
                    GameKind::Battle => battle_pop
                        .push(BattlePolicy::preset(preset).ok_or_else(|| {
                            unknown("rock, paper, scissors, strong, weak, mixed")
                        })?),
                }
                names.push(name.to_string());
            }
        }
    }
    if names.len() < 2 {
        bail!("--policies: at least two policies are needed");
    }
    let mut sorted = names.clone();
    sorted.sort();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        bail!(
            "--policies: policy name `{}` appears twice (use ALIAS=PRESET)",
            w[0]
        );
    }
    let game = match kind {
        GameKind::Bargain => Game::Bargain(bargain),
        GameKind::Battle => Game::Battle(battle_pop, battle),
    };
    Ok((names, game))
}

/// A simulated match as a log record (normalised payoffs; the matchmaker's propensity).
pub fn to_match(m: &SimMatch, game: &str, names: &[String], seed: u64) -> Match {
    Match {
        batna_i: m.batna.map(|b| b[0]),
        batna_j: m.batna.map(|b| b[1]),
        agreement: m.agreement,
        ef1: m.ef1,
        propensity: Some(m.propensity),
        source: Some("sim".into()),
        seed: Some(seed),
        ..Match::new(
            format!("{game}:{seed}:{}", m.index),
            game,
            names[m.i].clone(),
            names[m.j].clone(),
            m.payoff[0],
            m.payoff[1],
        )
    }
}

/// A population, its game and a matchmaker, from `simulate`'s flags.
pub struct Setup {
    pub names: Vec<String>,
    pub game: Game,
    /// Value of the `game` column.
    pub game_name: String,
    pub matchmaker: Matchmaker,
    pub seed: u64,
}

/// Builds the simulation `args` describe. `live`: the σ matchmaker may start without
/// `--sigma` (uniform until the engine publishes σ).
pub fn setup(args: &SimulateArgs, live: bool) -> Result<Setup> {
    if args.matches == 0 {
        bail!("--matches must be at least 1");
    }
    let battle = BattleConfig {
        rounds: args.rounds,
        style_weight: args.style_weight,
        form_effect: args.form_effect,
    };
    if battle.rounds == 0 || battle.rounds > 255 {
        bail!("--rounds must be in 1..=255");
    }
    let (names, game) = parse_population(args.game, &args.policies, battle)?;
    let game_name = args
        .game_name
        .clone()
        .unwrap_or_else(|| game.name().to_string());
    let n = names.len();
    let matchmaker = match args.matchmaker.as_str() {
        "uniform" => Matchmaker::Uniform,
        "rating" => {
            let ratings = match (&args.ratings, &game) {
                (Some(r), _) => r.clone(),
                (None, Game::Battle(p, _)) => p.iter().map(|p| p.strength).collect(),
                (None, Game::Bargain(_)) => {
                    bail!("--matchmaker rating needs --ratings for the bargaining game")
                }
            };
            Matchmaker::Rating {
                ratings,
                shift: args.rating_shift,
                temperature: args.rating_temperature,
            }
        }
        "sigma" => Matchmaker::Sigma {
            weights: match (&args.sigma, live) {
                (Some(w), _) => w.clone(),
                (None, true) => vec![1.0; n],
                (None, false) => {
                    bail!("--matchmaker sigma needs --sigma W1,W2,… (one weight per policy)")
                }
            },
            epsilon: args.sigma_epsilon,
        },
        other => bail!("unknown matchmaker `{other}`; expected uniform, sigma or rating"),
    };
    matchmaker
        .validate(n)
        .map_err(|e| anyhow::anyhow!("--matchmaker: {e}"))?;
    Ok(Setup {
        names,
        game,
        game_name,
        matchmaker,
        seed: args.seed,
    })
}

pub fn run(args: &SimulateArgs) -> Result<()> {
    if args.out.is_none() && args.kafka.is_none() && args.matrix.is_none() {
        bail!(
            "say where the matches go: --out FILE (or -), --kafka BROKERS and/or --matrix FILE.json"
        );
    }
    let Setup {
        names,
        game,
        game_name,
        matchmaker,
        seed,
    } = setup(args, false)?;
    let n = names.len();
    let t0 = std::time::Instant::now();
    let (sim, played_on) = play_all(
        &game,
        &SimConfig {
            seed,
            matches: args.matches,
            threads: args.threads,
            keep_records: args.out.is_some() || args.kafka.is_some(),
        },
        &matchmaker,
        args.device,
    );
    let secs = t0.elapsed().as_secs_f64();
    let records: Vec<Match> = sim
        .records
        .iter()
        .map(|m| to_match(m, &game_name, &names, seed))
        .collect();
    let json_line = |m: &Match, s: &SimMatch| -> Result<String> {
        Ok(serde_json::to_string(&Line {
            m,
            raw_payoff_i: s.raw[0],
            raw_payoff_j: s.raw[1],
            actions: s.actions,
        })?)
    };
    let mut wrote = Vec::new();
    if let Some(path) = &args.out {
        write_out(path, &records, &sim.records, json_line)?;
        wrote.push(path.display().to_string());
    }
    if let Some(brokers) = &args.kafka {
        let writer = Writer::new(brokers, &args.topic, &[]).map_err(anyhow::Error::msg)?;
        for (m, s) in records.iter().zip(&sim.records) {
            writer
                .send(
                    Some(m.match_id.as_bytes()),
                    json_line(m, s)?.as_bytes(),
                    None,
                )
                .map_err(anyhow::Error::msg)?;
        }
        writer.flush().map_err(anyhow::Error::msg)?;
        wrote.push(format!("kafka {brokers} topic `{}`", args.topic));
    }
    if let Some(path) = &args.matrix {
        write_matrix(path, &names, &sim)?;
        wrote.push(path.display().to_string());
    }
    let out = wrote.join(" and ");
    eprintln!(
        "simulated {} {} matches among {n} policies on {played_on} in {secs:.3} s ({:.0} matches/s) → {out}",
        args.matches,
        game.name(),
        args.matches as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// `--device auto` uses the GPU from this many matches on: below it the CPU is done before
/// the kernels are compiled.
const AUTO_GPU_MATCHES: u64 = 1_000_000;

/// Plays the run where `--device` says; when the GPU cannot be used, says why (unless `auto`
/// chose it quietly) and plays on the CPU. Both give identical matches.
fn play_all(
    game: &Game,
    cfg: &SimConfig,
    matchmaker: &Matchmaker,
    device: SimDevice,
) -> (Simulation, String) {
    let wants_gpu = match device {
        SimDevice::Cpu => false,
        SimDevice::Cuda => true,
        SimDevice::Auto => cfg.matches >= AUTO_GPU_MATCHES,
    };
    if wants_gpu {
        match gpu::simulate(game, cfg, matchmaker) {
            Ok(played) => return played,
            Err(why) if device == SimDevice::Cuda || !why.quiet_for_auto => {
                eprintln!(
                    "warning: not using the GPU: {}; playing on the CPU",
                    why.reason
                )
            }
            Err(_) => {}
        }
    }
    let threads = match cfg.threads {
        0 => std::thread::available_parallelism().map_or(1, |t| t.get()),
        t => t,
    };
    (
        simulate(game, cfg, matchmaker),
        format!("the CPU ({threads} threads)"),
    )
}

/// Why the GPU path was not taken; `auto` stays quiet when there simply is no GPU.
struct NoGpu {
    reason: String,
    quiet_for_auto: bool,
}

#[cfg(feature = "cuda")]
mod gpu {
    use nashflow_kernels::sim::cuda::{CudaSimulator, CudaUnavailable};

    use super::*;

    pub fn simulate(
        game: &Game,
        cfg: &SimConfig,
        matchmaker: &Matchmaker,
    ) -> Result<(Simulation, String), NoGpu> {
        let fail = |e: CudaUnavailable| NoGpu {
            quiet_for_auto: matches!(e, CudaUnavailable::NoDriver | CudaUnavailable::NoDevice(_)),
            reason: e.to_string(),
        };
        let dev = CudaSimulator::open().map_err(fail)?;
        let sim = dev.simulate(game, cfg, matchmaker).map_err(fail)?;
        Ok((sim, format!("the GPU {}", dev.device)))
    }
}

#[cfg(not(feature = "cuda"))]
mod gpu {
    use super::*;

    pub fn simulate(
        _: &Game,
        _: &SimConfig,
        _: &Matchmaker,
    ) -> Result<(Simulation, String), NoGpu> {
        Err(NoGpu {
            reason: "this nashflow was built without the `cuda` feature".into(),
            quiet_for_auto: true,
        })
    }
}

/// The payoff matrix as `solve` reads it, with the counts behind each cell.
fn write_matrix(path: &Path, names: &[String], sim: &Simulation) -> Result<()> {
    let n = names.len();
    let cells = sim.payoff_cells(n);
    let raw: Vec<Option<f64>> = cells.iter().map(|c| c.1).collect();
    let payoff = impute(n, &raw, Missing::ColumnMean);
    let rows = |f: &dyn Fn(usize, usize) -> serde_json::Value| -> Vec<Vec<serde_json::Value>> {
        (0..n).map(|i| (0..n).map(|j| f(i, j)).collect()).collect()
    };
    let doc = serde_json::json!({
        "policies": names,
        "payoff": rows(&|i, j| payoff[(i, j)].into()),
        "counts": rows(&|i, j| cells[i * n + j].0.into()),
        "missing": "column-mean",
    });
    std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// One JSON line: the Match fields, then the simulator's raw payoffs and action count.
#[derive(serde::Serialize)]
struct Line<'a> {
    #[serde(flatten)]
    m: &'a Match,
    raw_payoff_i: u32,
    raw_payoff_j: u32,
    actions: u8,
}

/// Writes the records as Parquet (with the raw payoffs and action counts) or JSON Lines.
fn write_out(
    path: &Path,
    records: &[Match],
    sim: &[SimMatch],
    json_line: impl Fn(&Match, &SimMatch) -> Result<String>,
) -> Result<()> {
    let out = path.to_string_lossy().to_string();
    if out.ends_with(".parquet") {
        let base = nashflow_schemas::arrow_io::matches_batch(records);
        let extra = |f: fn(&SimMatch) -> u32| -> ArrayRef {
            Arc::new(UInt32Array::from_iter_values(sim.iter().map(f)))
        };
        let column = |name: &str, col| (Field::new(name, DataType::UInt32, false), col);
        let batch = nashflow_schemas::arrow_io::append_columns(
            &base,
            vec![
                column("raw_payoff_i", extra(|m| m.raw[0])),
                column("raw_payoff_j", extra(|m| m.raw[1])),
                column("actions", extra(|m| m.actions as u32)),
            ],
        );
        nashflow_schemas::arrow_io::write_parquet(path, &batch).map_err(anyhow::Error::msg)
    } else if out == "-" || out.ends_with(".jsonl") || out.ends_with(".ndjson") {
        let mut w: Box<dyn Write> = if out == "-" {
            Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
        } else {
            Box::new(std::io::BufWriter::new(
                std::fs::File::create(path).with_context(|| format!("creating {out}"))?,
            ))
        };
        for (m, s) in records.iter().zip(sim) {
            writeln!(w, "{}", json_line(m, s)?)?;
        }
        w.flush()?;
        Ok(())
    } else {
        bail!("--out must end in .parquet, .jsonl or .ndjson (or be `-` for JSON Lines on stdout)")
    }
}
