//! Wiring of the Kafka source into `nashflow run`: configuration from flags, and the thread
//! that polls the topic and feeds the epoch cutter.

use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use nashflow_connectors::kafka::{Decoder, Fetched, Source, SourceConfig};

use crate::cli::RunArgs;
use crate::run::{Item, ItemSender};

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

/// Messages handed from the fetching thread to the decoding thread at a time (or fewer,
/// once the oldest has waited `BATCH_WAIT`).
const BATCH: usize = crate::run::SOURCE_BATCH;
const BATCH_WAIT: Duration = Duration::from_millis(5);

/// Polls `source` into `tx`: for each message its position, then its record or error. With
/// `exit_at_end`, stops at the end offsets seen when the source opened. Fetching and decoding
/// run on two threads (each is about a thread's work at full rate), joined by batches.
pub fn read_kafka(mut source: Source, exit_at_end: bool, tx: ItemSender) {
    let decoder = source.decoder();
    let (batches, fetched) = mpsc::sync_channel::<Vec<Fetched>>(64);
    let decoding = std::thread::Builder::new()
        .name("kafka-decode".into())
        .spawn(move || decode_into(decoder, fetched, tx))
        .expect("a thread starts");
    let mut last_warning: Option<Instant> = None;
    let mut idle_since: Option<Instant> = None;
    let mut batch: Vec<Fetched> = Vec::with_capacity(BATCH);
    let mut oldest: Option<Instant> = None;
    loop {
        let wait = if batch.is_empty() {
            Duration::from_millis(100)
        } else {
            BATCH_WAIT.saturating_sub(oldest.map_or(Duration::ZERO, |t| t.elapsed()))
        };
        let mut idle = false;
        match source.fetch(wait) {
            Some(Ok(f)) => {
                idle_since = None;
                oldest.get_or_insert_with(Instant::now);
                batch.push(f);
            }
            Some(Err(e)) => warn(&mut last_warning, &e),
            None => idle = true,
        }
        let due = idle || batch.len() >= BATCH || oldest.is_some_and(|t| t.elapsed() >= BATCH_WAIT);
        if due && !batch.is_empty() {
            oldest = None;
            if batches.send(std::mem::take(&mut batch)).is_err() {
                break;
            }
        }
        // The end: past the high watermarks seen at start, and then nothing for 2 s (some
        // brokers report a watermark short of the last fetched batch's end).
        if idle
            && exit_at_end
            && source.caught_up()
            && idle_since.get_or_insert_with(Instant::now).elapsed() >= END_QUIET
        {
            break;
        }
    }
    drop(batches);
    let _ = decoding.join();
}

/// Reports a client error, at most once every 5 s: librdkafka retries on its own (a broker
/// restart, say), so polling goes on.
fn warn(last: &mut Option<Instant>, e: &str) {
    if last.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
        eprintln!("\nwarning: kafka: {e}");
        *last = Some(Instant::now());
    }
}

/// Decodes fetched batches into items for the epoch cutter, in fetch order.
fn decode_into(decoder: Decoder, fetched: Receiver<Vec<Fetched>>, tx: ItemSender) {
    let mut last_warning: Option<Instant> = None;
    for batch in fetched {
        let mut items = Vec::with_capacity(2 * batch.len());
        for f in batch {
            let polled = match decoder.decode(f) {
                Ok(p) => p,
                Err(e) => {
                    warn(&mut last_warning, &e);
                    continue;
                }
            };
            let position = Item::Consumed(polled.topic, polled.partition, polled.offset + 1);
            let item = match polled.record {
                Ok(m) => Item::Record(m, polled.source, polled.offset as u64),
                Err(e) => Item::Bad(e),
            };
            items.push(position);
            items.push(item);
        }
        if tx.send(Item::Batch(items)).is_err() {
            return;
        }
    }
}
