//! Wiring of the Kafka source into `nashflow run`: configuration from flags, and the thread
//! that polls the topic and feeds the epoch cutter.

use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use nashflow_connectors::kafka::{Source, SourceConfig};

use crate::cli::RunArgs;
use crate::run::Item;

/// `KEY=VALUE` flags as librdkafka properties.
pub fn properties(flags: &[String]) -> Result<Vec<(String, String)>> {
    flags
        .iter()
        .map(|f| match f.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => bail!("--kafka-property `{f}`: expected KEY=VALUE"),
        })
        .collect()
}

pub fn source_config(args: &RunArgs, brokers: &str) -> Result<SourceConfig> {
    Ok(SourceConfig {
        brokers: brokers.to_string(),
        topics: args.topics.clone(),
        group: args.group.clone(),
        dead_letter_topic: args.dead_letter_topic.clone(),
        share: (0, 1),
        properties: properties(&args.kafka_properties)?,
    })
}

/// Silence after the end offsets that ends an `--exit-at-end` run.
const END_QUIET: Duration = Duration::from_secs(2);

/// Polls `source` into `tx`: for each message its position, then its record or error. With
/// `exit_at_end`, stops at the end offsets seen when the source opened.
pub fn read_kafka(mut source: Source, exit_at_end: bool, tx: Sender<Item>) {
    let mut last_warning: Option<Instant> = None;
    let mut idle_since: Option<Instant> = None;
    loop {
        let polled = match source.poll(Duration::from_millis(100)) {
            // The end: past the high watermarks seen at start, and then nothing for 2 s
            // (some brokers report a watermark short of the last fetched batch's end).
            None if exit_at_end && source.caught_up() => {
                if idle_since.get_or_insert_with(Instant::now).elapsed() >= END_QUIET {
                    return;
                }
                continue;
            }
            None => continue,
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                // librdkafka retries on its own (a broker restart, say): report, at most
                // once every 5 s, and keep polling.
                if last_warning.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
                    eprintln!("\nwarning: kafka: {e}");
                    last_warning = Some(Instant::now());
                }
                continue;
            }
        };
        idle_since = None;
        let source_name = format!("{}[{}]", polled.topic, polled.partition);
        let position = Item::Consumed(polled.topic, polled.partition, polled.offset + 1);
        let item = match polled.record {
            Ok(m) => Item::Record(m, source_name, polled.offset as u64),
            Err(e) => Item::Bad(e),
        };
        if tx.send(position).is_err() || tx.send(item).is_err() {
            return;
        }
    }
}
