//! `nashflow run --config FILE.toml`: every key is a flag name, so the file and the command
//! line describe the same settings. Nested tables prefix their keys (`[trigger] threshold = 0.1`
//! is `--trigger-threshold 0.1`), `true` switches a flag on, arrays repeat a flag. Flags given
//! on the command line come after the file's and win. A key that names no flag of `run` is an
//! error naming the key.

use anyhow::{bail, Context, Result};
use clap::CommandFactory;
use toml::Value;

/// Splices the flags from `--config FILE` into `argv` just after the subcommand.
pub fn expand(argv: Vec<String>) -> Result<Vec<String>> {
    let Some(pos) = argv
        .iter()
        .position(|a| a == "--config" || a.starts_with("--config="))
    else {
        return Ok(argv);
    };
    let (path, consumed) = match argv[pos].strip_prefix("--config=") {
        Some(p) => (p.to_string(), 1),
        None => (
            argv.get(pos + 1)
                .cloned()
                .context("--config needs a file path")?,
            2,
        ),
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading config {path}"))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("parsing config {path}"))?;
    let mut flags = Vec::new();
    to_flags("", &table, &mut flags).with_context(|| format!("config {path}"))?;
    let cli = crate::cli::Cli::command();
    let run = cli
        .find_subcommand("run")
        .expect("the CLI has a run subcommand");
    for flag in &flags {
        let name = flag.trim_start_matches("--");
        let name = name.split_once('=').map_or(name, |(n, _)| n);
        if !run.get_arguments().any(|a| a.get_long() == Some(name)) {
            bail!(
                "config {path}: no `run` flag --{name} (key `{}`); keys are the flag names",
                name.replace('-', "_")
            );
        }
    }
    let mut out: Vec<String> = argv[..pos].to_vec();
    // Config flags go right after the subcommand so that later command-line flags win.
    let sub = out
        .iter()
        .position(|a| a == "run")
        .map_or(out.len(), |k| k + 1);
    out.splice(sub..sub, flags);
    out.extend_from_slice(&argv[pos + consumed..]);
    Ok(out)
}

fn to_flags(prefix: &str, table: &toml::Table, out: &mut Vec<String>) -> Result<()> {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key.replace('_', "-")
        } else {
            format!("{prefix}-{}", key.replace('_', "-"))
        };
        match value {
            Value::Table(t) => to_flags(&name, t, out)?,
            Value::Boolean(true) => out.push(format!("--{name}")),
            Value::Boolean(false) => {}
            // `--name=value`, so that a value starting with `-` stays a value.
            Value::Array(items) => {
                for item in items {
                    out.push(format!("--{name}={}", scalar(&name, item)?));
                }
            }
            other => out.push(format!("--{name}={}", scalar(&name, other)?)),
        }
    }
    Ok(())
}

fn scalar(name: &str, v: &Value) -> Result<String> {
    Ok(match v {
        Value::String(s) => s.clone(),
        Value::Integer(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Boolean(b) => b.to_string(),
        other => bail!("`{name}`: unsupported value {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_becomes_flags_and_the_command_line_wins() {
        let dir = std::env::temp_dir().join(format!("nashflow-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nashflow.toml");
        std::fs::write(
            &path,
            "input = [\"a.csv\", \"b.csv\"]\nepoch_records = 500\nwatch = true\nno-level3 = false\n\n[trigger]\nthreshold = -0.1\nmode = \"absolute\"\n",
        )
        .unwrap();
        let argv: Vec<String> = [
            "nashflow",
            "run",
            "--config",
            path.to_str().unwrap(),
            "--epoch-records",
            "7",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let got = expand(argv).unwrap();
        assert_eq!(
            got,
            [
                "nashflow",
                "run",
                "--epoch-records=500",
                "--input=a.csv",
                "--input=b.csv",
                "--trigger-mode=absolute",
                "--trigger-threshold=-0.1",
                "--watch",
                "--epoch-records",
                "7"
            ]
        );
        // The negative value parses as a value, and the command line wins.
        let cli = <crate::cli::Cli as clap::Parser>::try_parse_from(&got).unwrap();
        let crate::cli::Command::Run(r) = cli.command else {
            panic!("run")
        };
        assert_eq!((r.epoch_records, r.trigger_threshold), (7, -0.1));
        assert_eq!(r.input.len(), 2);
    }

    #[test]
    fn a_key_that_names_no_flag_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("nashflow-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("nashflow.toml");
        std::fs::write(&path, "epoch_records = 5\n[trigger]\nthreshhold = 0.1\n").unwrap();
        let argv = ["nashflow", "run", "--config", path.to_str().unwrap()];
        let e = expand(argv.iter().map(|s| s.to_string()).collect()).unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("--trigger-threshhold") && e.contains("trigger_threshhold"),
            "{e}"
        );
    }
}
