use clap::Parser;
use nashflow_pipelines::cli::{Cli, Command};

/// Sources build records on their own threads and the engine's workers free them; glibc's
/// malloc spent about a fifth of a Kafka run's CPU on that traffic, mimalloc much less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let argv = match nashflow_pipelines::config::expand(std::env::args().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    };
    let cli = Cli::parse_from(argv);
    let result = match &cli.command {
        Command::Analyze(a) => nashflow_pipelines::analyze::run(a),
        Command::Solve(s) => nashflow_pipelines::solve::run(s),
        Command::Run(r) => nashflow_pipelines::run::run(r),
        Command::Simulate(s) => nashflow_pipelines::simulate::run(s),
        Command::Demo(d) => nashflow_pipelines::demo::run(d).map(|_| ()),
        Command::Sql(q) => nashflow_pipelines::sql::run(q),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
