//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use nashflow_kernels::analysis::AnalysisConfig;
use nashflow_kernels::bounds::BoundsConfig;
use nashflow_kernels::stats::Missing;
use nashflow_kernels::{SolverConfig, SolverKind};
use nashflow_schemas::Layout;

#[derive(Parser, Debug)]
#[command(
    name = "nashflow",
    version,
    args_override_self = true,
    about = "Empirical game-theoretic analysis of match logs: payoff matrices, Nash mixtures, \
             exploitability, welfare, lifts, attribution and ratings.",
    long_about = "Empirical game-theoretic analysis of match logs.\n\n\
        A match log has one row per finished match (columns match_id, game, policy_i, policy_j, \
        payoff_i, payoff_j, and optionally batna_i, batna_j, agreement, ef1, context, propensity, \
        ts, source, seed, retract). nashflow builds the symmetric meta-game payoff matrix \
        M[i,j] = mean payoff to i against j, solves it (max-entropy Nash by default) and reports \
        regret, exploitability, welfare, partner/ecosystem lifts, Shapley attribution and ratings.\n\n\
        Examples:\n  \
        nashflow analyze examples/rps.jsonl\n  \
        nashflow analyze logs/*.jsonl --bootstrap 200 --seed 7 --out results/\n  \
        nashflow analyze egta.csv --layout perspective --format json\n  \
        nashflow solve matrix.json --solver alpharank\n  \
        nashflow simulate --game battle --policies strong,weak,rock,paper,scissors --out battle.jsonl\n  \
        nashflow run -i battle.jsonl --exit-at-end --out snapshot/\n  \
        nashflow run -i logs/ --watch --epoch-ms 100        (live; leaderboard on http://127.0.0.1:8650)\n  \
        nashflow sql \"SELECT policy, mass, regret FROM policies ORDER BY mass DESC\" snapshot/\n\n\
        Environment: NASHFLOW_KERNEL_THREADS=N caps the threads a kernel's independent solves \
        use (default: all cores; results do not depend on it)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Analyse match logs end to end (batch).
    Analyze(AnalyzeArgs),
    /// Solve a payoff matrix given directly (JSON or CSV).
    Solve(SolveArgs),
    /// Run the incremental engine over match logs, epoch by epoch (timely + differential).
    ///
    /// Each epoch's output is the analysis of all input up to it. The run ends when its
    /// inputs do; Ctrl-C (or SIGTERM) ends it gracefully there, as if they had: the records
    /// taken are applied, results printed and `--out` written (a second Ctrl-C aborts).
    Run(Box<RunArgs>),
    /// Simulate matches of a built-in game (bargaining or battle) into a match log.
    Simulate(SimulateArgs),
    /// The PSRO loop on one machine: simulator → engine → best-response oracle, printing one
    /// line per oracle iteration (exploitability should fall).
    Demo(DemoArgs),
    /// Read-only SQL (DataFusion) over the tables a run or an analysis wrote.
    Sql(SqlArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqlFormat {
    Table,
    Csv,
    Json,
}

/// `nashflow sql "SELECT policy, mass FROM policies ORDER BY mass DESC" results/`
#[derive(Args, Debug, Clone)]
#[command(after_help = "Examples:\n  \
    nashflow sql \"SELECT policy, mass, regret FROM policies ORDER BY mass DESC\" results/\n  \
    nashflow sql --archive archive/ \"SELECT epoch, exploitability FROM metrics_history ORDER BY epoch\"\n  \
    nashflow sql --server http://127.0.0.1:8650 \"SELECT * FROM jobs\"\n\n\
    Tables: policies, metrics, cells, equilibria, lifts, attribution, matches, dead_letters, \
    jobs, bounds, certificates (those the run or analysis wrote).")]
pub struct SqlArgs {
    /// One query: SELECT, WITH, VALUES or EXPLAIN (DDL, DML, COPY and SET are refused).
    pub query: String,
    /// The directory of tables, as `--data DIR`. It may also come before the query
    /// (`nashflow sql results/ "SELECT …"`).
    #[arg(value_name = "DIR", conflicts_with_all = ["data", "archive", "server"])]
    pub dir: Option<String>,
    /// A directory of tables (`NAME.parquet`, as written by `analyze --out` / `run --out`);
    /// each file is table NAME.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// An archive written by `run --archive`: table NAME_history spans every epoch.
    #[arg(long)]
    pub archive: Option<PathBuf>,
    /// Ask a running `nashflow run` instead (http://HOST:PORT): its live tables, one epoch;
    /// the server's own row limit applies.
    #[arg(long, conflicts_with_all = ["data", "archive"])]
    pub server: Option<String>,
    #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
    pub format: SqlFormat,
    /// Row limit of a result (the rest is cut, with a note on stderr).
    #[arg(long, default_value_t = 10_000)]
    pub max_rows: usize,
    /// Time limit of a query in seconds.
    #[arg(long, default_value_t = 30.0)]
    pub timeout_s: f64,
}

impl SqlArgs {
    /// The query and the table directory, whichever order the two positionals came in. The
    /// directory is the one that exists as a directory, or else the one that does not read
    /// as a query (SELECT, WITH, VALUES or EXPLAIN); a lone directory is a missing query.
    pub fn query_and_data(&self) -> Result<(&str, Option<&std::path::Path>), String> {
        use std::path::Path;
        let is_dir = |s: &str| Path::new(s).is_dir();
        let reads_as_query = |s: &str| {
            let word = s
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            ["SELECT", "WITH", "VALUES", "EXPLAIN"].contains(&word.as_str())
        };
        let first = self.query.as_str();
        match self.dir.as_deref() {
            Some(second) => {
                let swapped = if is_dir(first) != is_dir(second) {
                    is_dir(first)
                } else {
                    !reads_as_query(first) && reads_as_query(second)
                };
                Ok(if swapped {
                    (second, Some(Path::new(first)))
                } else {
                    (first, Some(Path::new(second)))
                })
            }
            None if is_dir(first) && self.data.is_none() && self.archive.is_none() => Err(format!(
                "`{first}` is a directory: give the query too, `nashflow sql \"SELECT …\" {first}`"
            )),
            None => Ok((first, self.data.as_deref())),
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Oracle iterations to run.
    #[arg(long, default_value_t = 5)]
    pub iterations: usize,
    /// The initial bargaining population (presets or JSON specs, as for `simulate`).
    #[arg(long, default_value = "random,fair")]
    pub policies: String,
    /// Simulated matches per ordered pair when a policy joins.
    #[arg(long, default_value_t = 400)]
    pub matches_per_pair: u64,
    /// Evaluation matches per candidate in the oracle (and for the printed exploitability).
    #[arg(long, default_value_t = 1500)]
    pub oracle_matches: u64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The engine's PSRO trigger threshold (relative to the payoff range); firings are marked.
    #[arg(long, default_value_t = 0.05)]
    pub trigger_threshold: f64,
    /// Do not start the web server (with it, the demo keeps serving the page after the last
    /// iteration until stopped).
    #[arg(long)]
    pub no_serve: bool,
    /// Address of the web server (default 127.0.0.1:8650).
    #[arg(long)]
    pub listen: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GameKind {
    /// Alternating-offers bargaining over items (7, 4, 1) with private values and outside
    /// options; payoffs normalised by each player's maximum bundle value.
    Bargain,
    /// Best-of-rounds battles with latent strength and rock–paper–scissors styles.
    Battle,
}

impl GameKind {
    pub fn name(self) -> &'static str {
        match self {
            GameKind::Bargain => "bargain",
            GameKind::Battle => "battle",
        }
    }
}

/// `nashflow simulate --game bargain --policies greedy,fair,boulware --matches 100000 --out log.parquet`
#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    #[arg(long, value_enum, default_value_t = GameKind::Bargain)]
    pub game: GameKind,
    /// The population: comma-separated presets (`NAME` or `ALIAS=PRESET`; bargain: random,
    /// walk, greedy, fair, boulware, conceder, threshold; battle: rock, paper, scissors,
    /// strong, weak, mixed), or a JSON array of specs (inline or a file), e.g.
    /// `[{"name":"b1","kind":"concession","start":1,"end":0.4,"beta":0.3}]` or
    /// `[{"name":"r","strength":0.5,"style":[1,0,0]}]`.
    #[arg(long)]
    pub policies: String,
    /// Matches to play.
    #[arg(long, default_value_t = 10_000)]
    pub matches: u64,
    /// Who meets whom: `uniform` (propensity 1/n), `sigma` (opponents from σ), or `rating`: a
    /// deliberately confounded
    /// matchmaker that sees seat 0's hidden form (good/bad, ½ each) and seeks opponents rated
    /// near rating ± shift, logging only the propensity marginal over the form.
    #[arg(long, default_value = "uniform", value_parser = ["uniform", "sigma", "rating"])]
    pub matchmaker: String,
    /// `--matchmaker sigma`: PSRO-style opponent sampling. Seat 0 is uniform and seat 1 comes
    /// from (1 − ε)·σ + ε·uniform, with σ given here (one weight per policy, normalised).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub sigma: Option<Vec<f64>>,
    /// `--matchmaker sigma`: the uniform share ε that keeps every opponent possible.
    #[arg(long, default_value_t = 0.1)]
    pub sigma_epsilon: f64,
    /// Ratings for `--matchmaker rating` (comma-separated, one per policy; default for
    /// battles: the strengths).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub ratings: Option<Vec<f64>>,
    /// Rating matchmaker: how far from its own rating seat 0's form moves the target.
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    pub rating_shift: f64,
    /// Rating matchmaker: temperature of `exp(−|r_j − target| / T)`.
    #[arg(long, default_value_t = 0.5)]
    pub rating_temperature: f64,
    /// Battle: seat 0's strength ± this in good/bad form (the confounder's effect on payoffs).
    #[arg(long, default_value_t = 0.0)]
    pub form_effect: f64,
    /// Seed of the Philox streams: match k is reproducible from (seed, k) alone.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output: FILE.parquet, FILE.jsonl, or `-` (JSON Lines on stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the meta-game payoff matrix of all the matches, from the pair statistics, as JSON
    /// that `nashflow solve` reads: `{"policies", "payoff", "counts", "missing"}`, cells as
    /// `analyze` builds them (i in either seat; missing cells column-mean imputed). With
    /// neither --out nor --kafka no record is kept, so runs of billions of games fit in
    /// memory (and on a GPU take seconds).
    #[arg(long, value_name = "FILE.json")]
    pub matrix: Option<PathBuf>,
    /// Produce the matches to Kafka at BROKERS (`host:port[,…]`), one JSON message each,
    /// keyed by match_id (instead of, or as well as, --out).
    #[arg(long, value_name = "BROKERS")]
    pub kafka: Option<String>,
    /// Kafka topic for --kafka.
    #[arg(long, default_value = "matches", requires = "kafka")]
    pub topic: String,
    /// Value of the `game` column (default: the game's name).
    #[arg(long)]
    pub game_name: Option<String>,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Where the matches are played: `auto` (the GPU for runs of 1,000,000 matches or more
    /// when one is usable, else the CPU), `cpu`, or `cuda` (the GPU; says why and uses the CPU
    /// when it cannot). Both play identical matches for the same seed.
    #[arg(long, value_enum, default_value_t = SimDevice::Auto)]
    pub device: SimDevice,
    /// Battle: rounds per match.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Battle: weight κ of the style (rock–paper–scissors) term.
    #[arg(long, default_value_t = 2.0)]
    pub style_weight: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SimDevice {
    Auto,
    Cpu,
    Cuda,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct SolverArgs {
    /// Meta-solver: mene (max-entropy Nash), nash-lp (maximin LP, zero-sum), uniform, prd
    /// (projected replicator dynamics), alpharank, cce (max-entropy symmetric CCE), lle
    /// (limiting logit equilibrium).
    #[arg(long, default_value = "mene", value_parser = parse_solver)]
    pub solver: SolverKind,
    /// α-Rank population size m.
    #[arg(long, default_value_t = 50.0, value_parser = at_least_one, allow_negative_numbers = true)]
    pub alpharank_m: f64,
    /// α-Rank ranking intensity α (applied to raw payoffs).
    #[arg(long, default_value_t = 100.0, value_parser = non_negative, allow_negative_numbers = true)]
    pub alpharank_alpha: f64,
    /// PRD iterations (the result averages all iterates).
    #[arg(long, default_value_t = 100_000, value_parser = count)]
    pub prd_iterations: usize,
    /// PRD step size on the range-normalised matrix.
    #[arg(long, default_value_t = 1e-3, value_parser = positive, allow_negative_numbers = true)]
    pub prd_dt: f64,
    /// PRD exploration floor.
    #[arg(long, default_value_t = 1e-6, value_parser = fraction, allow_negative_numbers = true)]
    pub prd_gamma: f64,
    /// Final logit precision λ for lle, on the range-normalised matrix.
    #[arg(long, default_value_t = 1e3, value_parser = positive, allow_negative_numbers = true)]
    pub lle_lambda: f64,
    /// Search budget (nodes) of general-sum mene. If it runs out, σ is the highest-entropy
    /// equilibrium found and `solver_exact` is false.
    #[arg(long, default_value_t = nashflow_kernels::solvers::DEFAULT_NODE_LIMIT, value_parser = count)]
    pub mene_node_limit: usize,
}

fn parse_solver(s: &str) -> Result<SolverKind, String> {
    s.parse()
}

/// A finite number satisfying `ok`, else `expected` in the error.
fn number(s: &str, ok: impl Fn(f64) -> bool, expected: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && ok(x) => Ok(x),
        _ => Err(format!("expected {expected}, got `{s}`")),
    }
}

fn positive(s: &str) -> Result<f64, String> {
    number(s, |x| x > 0.0, "a number above 0")
}

fn non_negative(s: &str) -> Result<f64, String> {
    number(s, |x| x >= 0.0, "a number ≥ 0")
}

fn at_least_one(s: &str) -> Result<f64, String> {
    number(s, |x| x >= 1.0, "a number ≥ 1")
}

fn fraction(s: &str) -> Result<f64, String> {
    number(s, |x| (0.0..1.0).contains(&x), "a number in [0, 1)")
}

/// A count of at least 1.
fn count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("expected a whole number ≥ 1, got `{s}`")),
    }
}

impl SolverArgs {
    pub fn config(&self) -> SolverConfig {
        SolverConfig {
            kind: self.solver,
            alpharank_m: self.alpharank_m,
            alpharank_alpha: self.alpharank_alpha,
            prd_iterations: self.prd_iterations,
            prd_dt: self.prd_dt,
            prd_gamma: self.prd_gamma,
            lle_lambda: self.lle_lambda,
            mene_node_limit: self.mene_node_limit,
        }
    }
}

/// How records become a meta-game and how it is analysed (shared by `analyze` and `run`).
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Row layout: `match` (one row per match, both seats count) or `perspective` (one row per
    /// seat, each row feeds only cell (policy_i, policy_j)).
    #[arg(long, default_value = "match", value_parser = parse_layout)]
    pub layout: Layout,
    #[command(flatten)]
    pub solver: SolverArgs,
    /// Missing-cell policy: column-mean, zero or prior=X.
    #[arg(long, default_value = "column-mean", value_parser = parse_missing)]
    pub missing: Missing,
    /// Seed for the bootstrap and Monte-Carlo attribution.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Exact Shapley/Banzhaf up to this many policies (2^n solves); Monte Carlo beyond.
    #[arg(long, default_value_t = 16)]
    pub exact_max: usize,
    /// Monte-Carlo samples (permutations and coalitions) beyond --exact-max.
    #[arg(long, default_value_t = 200, value_parser = count)]
    pub mc_samples: usize,
    /// Skip Level 3 attribution.
    #[arg(long)]
    pub no_level3: bool,
    /// Causal bounds on matchups (Manski; marginal-sensitivity when matches carry
    /// `propensity`; per `context` stratum) and certificates for the leaderboard's decisions:
    /// the `bounds` and `certificates` tables.
    #[arg(long)]
    pub bounds: bool,
    /// Sensitivity levels Γ ≥ 1 for --bounds (comma-separated); a claim is certified when it
    /// holds up to the largest.
    #[arg(long, value_delimiter = ',', default_value = "1,1.5,2")]
    pub gamma: Vec<f64>,
    /// Declared payoff range LO,HI for the bounds (default: the observed range of each game).
    #[arg(long, value_parser = parse_range, allow_hyphen_values = true)]
    pub payoff_range: Option<(f64, f64)>,
    /// Upper end of the tipping-Γ search; claims that never flip are "robust beyond" it.
    #[arg(long, default_value_t = 100.0)]
    pub gamma_max: f64,
}

fn parse_range(s: &str) -> Result<(f64, f64), String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let [lo, hi] = parts[..] else {
        return Err(format!("`{s}`: expected LO,HI, e.g. 0,1"));
    };
    let num = |x: &str| {
        x.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("`{x}` is not a finite number"))
    };
    let (lo, hi) = (num(lo)?, num(hi)?);
    if lo > hi {
        return Err(format!("`{s}`: LO must not exceed HI"));
    }
    Ok((lo, hi))
}

impl ModelArgs {
    /// The kernels' configuration, with `bootstrap` replicates at `ci_level`.
    pub fn analysis(&self, bootstrap: usize, ci_level: f64) -> AnalysisConfig {
        AnalysisConfig {
            solver: self.solver.config(),
            missing: self.missing,
            bootstrap,
            seed: self.seed,
            ci_level,
            lifts: true,
            level3: !self.no_level3,
            exact_max: self.exact_max,
            mc_samples: self.mc_samples,
            bounds: self.bounds.then(|| BoundsConfig {
                gammas: self.gamma.clone(),
                range: self.payoff_range,
                gamma_max: self.gamma_max,
            }),
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct AnalyzeArgs {
    /// Match logs (.csv, .jsonl/.ndjson/.json or .parquet) or directories of them (their
    /// logs in name order, names starting with `.` or `_` skipped), read in order; `-` reads
    /// JSON Lines from stdin.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Bootstrap replicates (stratified by seat pair); 0 turns it off.
    #[arg(long, default_value_t = 0)]
    pub bootstrap: usize,
    /// Central coverage of bootstrap intervals.
    #[arg(long, default_value_t = 0.95)]
    pub ci_level: f64,
    /// Only analyse this game.
    #[arg(long)]
    pub game: Option<String>,
    /// Write Parquet tables (policies, cells, metrics, equilibria, lifts, attribution, matches,
    /// dead_letters) into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Output on stdout.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Stop at the first bad row instead of skipping it.
    #[arg(long)]
    pub strict: bool,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
}

fn parse_layout(s: &str) -> Result<Layout, String> {
    s.parse()
}

fn parse_missing(s: &str) -> Result<Missing, String> {
    s.parse()
}

#[derive(Args, Debug, Clone)]
pub struct SolveArgs {
    /// Payoff matrix: JSON `{"policies": [...], "payoff": [[...]]}` or CSV whose header row
    /// names the policies (an optional first column of row labels is ignored). `-` reads JSON
    /// from stdin.
    pub matrix: PathBuf,
    #[command(flatten)]
    pub solver: SolverArgs,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Match logs or directories of them (.csv, .jsonl/.ndjson/.json, .parquet), read in order;
    /// `-` reads JSON Lines from stdin until end of input. (`--config FILE.toml` supplies any
    /// of these flags from a file: keys are flag names, `[trigger] threshold` is
    /// `--trigger-threshold`; command-line flags win.)
    #[arg(long = "input", short = 'i', required_unless_present_any = ["files", "kafka", "simulate", "ingest_token"], conflicts_with_all = ["kafka", "simulate"], num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// Match logs or directories of them, as `--input` takes them (and `analyze` its files).
    #[arg(value_name = "FILE", conflicts_with_all = ["input", "kafka", "simulate"])]
    pub files: Vec<PathBuf>,
    /// Use the built-in simulator as the source: the flags of `nashflow simulate` in one
    /// string, e.g. "--game battle --policies strong,weak,rock,paper,scissors --matchmaker
    /// sigma --matches 100000". It plays one epoch (--epoch-records matches) at a time; with
    /// `--matchmaker sigma` the opponent weights are the engine's latest σ of that game.
    #[arg(
        long,
        value_name = "FLAGS",
        conflicts_with = "kafka",
        allow_hyphen_values = true
    )]
    pub simulate: Option<String>,
    /// Consume JSON match messages from Kafka at BROKERS (`host:port[,host:port…]`) instead
    /// of files. Every partition of the topics is read from the beginning, or from the offsets
    /// of `--state`; with --exit-at-end the run stops at the end offsets seen at start.
    #[arg(long, value_name = "BROKERS")]
    pub kafka: Option<String>,
    /// Kafka topic(s) of matches (repeatable).
    #[arg(long = "topic", default_value = "matches", requires = "kafka")]
    pub topics: Vec<String>,
    /// Consumer group; its committed offsets report progress (committed only after the epoch
    /// holding them is applied and durable).
    #[arg(long, default_value = "nashflow", requires = "kafka")]
    pub group: String,
    /// Topic for messages that do not decode: original key and bytes, the reason in header
    /// `nashflow-error` (and `nashflow-field`, `nashflow-source` = topic[partition]@offset).
    #[arg(long, value_name = "TOPIC", requires = "kafka")]
    pub dead_letter_topic: Option<String>,
    /// Extra librdkafka property for the consumer and producers (repeatable), e.g.
    /// `security.protocol=SASL_SSL`.
    #[arg(long = "kafka-property", value_name = "KEY=VALUE", requires = "kafka")]
    pub kafka_properties: Vec<String>,
    /// Durable state directory: each epoch's records and rejected rows are written (Parquet)
    /// with the source offsets before the offsets are committed; a restart resumes from it
    /// instead of re-reading the topic. Without it a run reads the topics from the beginning.
    #[arg(long, value_name = "DIR", requires = "kafka")]
    pub state: Option<PathBuf>,
    /// Every N epochs, replace the state's per-epoch segments by a snapshot of the live records
    /// and the rejected rows (0: never), so the state and a restart stay proportional to the
    /// live matches rather than to everything ever consumed.
    #[arg(long, default_value_t = 64)]
    pub state_compact_every: u64,
    /// Keep watching input directories for new files (polled every 500 ms) until interrupted,
    /// or, with --exit-at-end, until the files present have been read. A new file is read
    /// once, when its size and time held for one poll; names starting with `.` or `_` are
    /// skipped (write `.x.part`, then rename it to `x.jsonl`).
    #[arg(long)]
    pub watch: bool,
    /// Also close an epoch this many milliseconds after its first record or rejected row
    /// (0: by count only). Default: 1000 on a live run (--watch, stdin, Kafka or HTTP
    /// ingest, without --exit-at-end), so that a slow stream's records show within a second;
    /// otherwise by count only.
    #[arg(long)]
    pub epoch_ms: Option<u64>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Records per epoch: each epoch's output is the analysis of all input up to it.
    #[arg(long, default_value_t = 10_000)]
    pub epoch_records: usize,
    /// Timely workers (each owns the games whose id hashes to it): one runs on the engine's
    /// own thread, more run on a thread each. The solves inside
    /// one game's analysis (Level 2 subgames, bootstrap replicates; constant-sum Level 2
    /// below 64 policies stays on the worker) run on a separate pool of all cores;
    /// `NASHFLOW_KERNEL_THREADS=N` caps it (1: on the worker's own thread). Results do not
    /// depend on either.
    #[arg(short = 'w', long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,
    /// Level 3 cadence: recompute attribution every N epochs (and when a game's policy set
    /// changes); in between, the last values stand.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub level3_every: u64,
    /// Level 1/2 cadence: recompute the partner and ecosystem lifts (one leave-one-out solve
    /// per policy in σ's support, most of an epoch's kernel time in a large league) every N
    /// epochs, and when a game's policy set changes; in between, the last values stand.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub level2_every: u64,
    /// Streaming Poisson bootstrap replicates (each match weighted by Poisson(1) from
    /// hash(seed, replicate, match_id)); 0 turns it off.
    #[arg(long, default_value_t = 32)]
    pub bootstrap: u32,
    /// Central coverage of bootstrap intervals.
    #[arg(long, default_value_t = 0.95)]
    pub ci_level: f64,
    /// Stop once the inputs are exhausted and the last epoch is applied (with --watch: once
    /// the files present at start have been read).
    #[arg(long)]
    pub exit_at_end: bool,
    /// PSRO trigger threshold θ on the exploitability of the standing mixture.
    #[arg(long, default_value_t = 0.05)]
    pub trigger_threshold: f64,
    /// θ is `relative` to the payoff range or an `absolute` payoff.
    #[arg(long, default_value = "relative", value_parser = ["relative", "absolute"])]
    pub trigger_mode: String,
    /// After a job, re-arm only below θ·(1 − hysteresis).
    #[arg(long, default_value_t = 0.5)]
    pub trigger_hysteresis: f64,
    /// Minimum epochs between two jobs of one game.
    #[arg(long, default_value_t = 1)]
    pub trigger_cooldown: u64,
    /// Emit no jobs.
    #[arg(long)]
    pub no_trigger: bool,
    /// Where jobs go (repeatable): a .jsonl path, `-` for stdout, `cmd:COMMAND` (JSON on
    /// stdin), `http://HOST:PORT/PATH` (POST), or `kafka://BROKERS/TOPIC` (key = game).
    /// Jobs are also in the `jobs` table.
    #[arg(long = "jobs")]
    pub jobs: Vec<String>,
    /// Archive every epoch under DIR as Parquet: the analysis tables of that epoch's consistent
    /// state, its jobs, and its incoming records (with `retract`, `epoch` and `position`).
    /// Each epoch is written to DIR/epoch=N/ and merged in the background, 16 at a time, into
    /// DIR/epochs=A-B/. `nashflow sql --archive DIR` reads it as NAME_history. DIR must hold
    /// no epochs, unless --state continues the run that wrote them.
    #[arg(long)]
    pub archive: Option<PathBuf>,
    /// Write the final snapshot as Parquet tables (same names and columns as `analyze --out`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// No per-epoch status lines.
    #[arg(long, short)]
    pub quiet: bool,
    /// Address of the web server (leaderboard page, SQL, JSON API, events, metrics). Default
    /// 127.0.0.1:8650; with --exit-at-end the server starts only when this is given.
    #[arg(long)]
    pub listen: Option<String>,
    /// Do not start the web server.
    #[arg(long)]
    pub no_serve: bool,
    /// Turns on `POST /api/matches`, which then needs `Authorization: Bearer TOKEN`. The
    /// run stays open for it; with no other input, HTTP is the run's only source.
    #[arg(long, conflicts_with = "no_serve")]
    pub ingest_token: Option<String>,
    /// Row limit of `POST /api/sql` results.
    #[arg(long, default_value_t = 10_000, value_parser = count)]
    pub sql_max_rows: usize,
}

/// The tick of a live run left at its default.
pub const LIVE_TICK_MS: u64 = 1000;

impl RunArgs {
    /// The epoch tick in milliseconds (0: by count only): `--epoch-ms`, or [`LIVE_TICK_MS`]
    /// when the run reads a source that does not end by itself.
    pub fn tick_ms(&self) -> u64 {
        let stdin = self
            .input
            .iter()
            .chain(&self.files)
            .any(|p| p.as_os_str() == "-");
        let live = !self.exit_at_end
            && (self.watch || stdin || self.kafka.is_some() || self.ingest_token.is_some());
        self.epoch_ms.unwrap_or(if live { LIVE_TICK_MS } else { 0 })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, Command, LIVE_TICK_MS};

    /// Values that may be negative parse as values, not as flags.
    #[test]
    fn negative_values_are_values() {
        let cli = Cli::try_parse_from(["nashflow", "analyze", "x.csv", "--payoff-range", "-1,1"])
            .unwrap();
        let Command::Analyze(a) = cli.command else {
            panic!("analyze")
        };
        assert_eq!(a.model.payoff_range, Some((-1.0, 1.0)));
        let cli = Cli::try_parse_from([
            "nashflow",
            "simulate",
            "--policies",
            "strong,weak",
            "--ratings",
            "-1,2",
            "--rating-shift",
            "-0.5",
            "--sigma",
            "-1,2",
        ])
        .unwrap();
        let Command::Simulate(s) = cli.command else {
            panic!("simulate")
        };
        assert_eq!(s.ratings, Some(vec![-1.0, 2.0]));
        assert_eq!(s.sigma, Some(vec![-1.0, 2.0]));
        assert_eq!(s.rating_shift, -0.5);
    }

    #[test]
    fn solver_and_cadence_parameters_are_checked() {
        for bad in [
            ["--alpharank-m", "0"],
            ["--alpharank-alpha", "nan"],
            ["--alpharank-alpha", "-1"],
            ["--prd-iterations", "0"],
            ["--prd-dt", "-1"],
            ["--prd-gamma", "1"],
            ["--lle-lambda", "0"],
            ["--mene-node-limit", "0"],
            ["--mc-samples", "0"],
        ] {
            let err = Cli::try_parse_from(["nashflow", "analyze", "x.csv", bad[0], bad[1]])
                .expect_err(bad[0])
                .to_string();
            assert!(err.contains("expected"), "{bad:?}: {err}");
        }
        for bad in ["--level2-every", "--level3-every", "--sql-max-rows"] {
            assert!(Cli::try_parse_from(["nashflow", "run", "-i", "x.csv", bad, "0"]).is_err());
        }
        let cli = Cli::try_parse_from(["nashflow", "solve", "m.json", "--alpharank-alpha", "0"]);
        assert!(cli.is_ok(), "α = 0 (neutral drift) is allowed");
    }

    #[test]
    fn live_runs_tick_by_default() {
        let tick = |flags: &[&str]| {
            let argv = ["nashflow", "run"].iter().chain(flags);
            match Cli::try_parse_from(argv).unwrap().command {
                Command::Run(r) => r.tick_ms(),
                _ => unreachable!("a run command"),
            }
        };
        assert_eq!(tick(&["-i", "x.csv"]), 0, "a finite input: by count");
        assert_eq!(tick(&["-i", "d/", "--watch"]), LIVE_TICK_MS);
        assert_eq!(tick(&["-i", "-"]), LIVE_TICK_MS);
        assert_eq!(tick(&["--ingest-token", "t"]), LIVE_TICK_MS);
        assert_eq!(tick(&["--kafka", "b:9092", "--topic", "m"]), LIVE_TICK_MS);
        assert_eq!(tick(&["-i", "d/", "--watch", "--exit-at-end"]), 0);
        assert_eq!(
            tick(&["-i", "-", "--epoch-ms", "0"]),
            0,
            "asked for count only"
        );
        assert_eq!(tick(&["-i", "x.csv", "--epoch-ms", "250"]), 250);
    }

    #[test]
    fn a_run_needs_a_worker() {
        let parse = |w: &str| Cli::try_parse_from(["nashflow", "run", "-i", "x.csv", "-w", w]);
        assert!(parse("0").is_err());
        let Command::Run(r) = parse("3").unwrap().command else {
            panic!("run")
        };
        assert_eq!(r.workers, 3);
    }
}
