//! Kafka source and writer (rdkafka over librdkafka built from source).
//!
//! The source assigns every partition of its topics explicitly (a process of a cluster takes
//! its share) and starts each at a given offset, or at the beginning: the engine's state comes
//! from the durable state directory, not from Kafka, so committed offsets are a report of
//! progress (lag, monitoring) and are written only after the epoch holding them is durable.
//! Each message is one JSON match; a message that does not decode is dead-lettered to a topic
//! with the reason in headers and its original bytes and key.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nashflow_schemas::read::decode_json;
use nashflow_schemas::{Match, RecordError};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

/// Next offset to read, per (topic, partition).
pub type Offsets = BTreeMap<(String, i32), i64>;

/// Timeout of metadata, watermark and commit requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Headers of a dead-lettered message.
pub const HEADER_ERROR: &str = "nashflow-error";
pub const HEADER_FIELD: &str = "nashflow-field";
pub const HEADER_SOURCE: &str = "nashflow-source";

/// Where and how to consume.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// `host:port[,host:port…]`
    pub brokers: String,
    pub topics: Vec<String>,
    /// Consumer group whose committed offsets report progress.
    pub group: String,
    /// Dead-letter topic for messages that do not decode; `None` keeps them only in the
    /// `dead_letters` table.
    pub dead_letter_topic: Option<String>,
    /// This process's share of the partitions: (index, processes); partition k of the sorted
    /// (topic, partition) list goes to process k mod processes.
    pub share: (usize, usize),
    /// Extra librdkafka properties (`key=value`).
    pub properties: Vec<(String, String)>,
}

/// One consumed message: its position and the decoded record or why it was rejected.
pub struct Polled {
    pub topic: Arc<str>,
    pub partition: i32,
    /// `topic[partition]`, the records' source name.
    pub source: Arc<str>,
    pub offset: i64,
    pub record: Result<Match, RecordError>,
}

/// Counts failed deliveries of a producer (librdkafka reports them asynchronously).
#[derive(Default)]
pub struct DeliveryReport {
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl ClientContext for DeliveryReport {}

impl ProducerContext for DeliveryReport {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            *self.last_error.lock().expect("delivery lock") = Some(e.to_string());
        }
    }
}

/// A producer to one topic that waits for room when librdkafka's queue is full and reports
/// failed deliveries at `flush`.
pub struct Writer {
    producer: BaseProducer<DeliveryReport>,
    pub topic: String,
}

impl Writer {
    pub fn new(
        brokers: &str,
        topic: &str,
        properties: &[(String, String)],
    ) -> Result<Writer, String> {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", brokers)
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "1000000")
            .set("message.timeout.ms", "60000");
        for (k, v) in properties {
            cfg.set(k, v);
        }
        let producer = cfg
            .create_with_context(DeliveryReport::default())
            .map_err(|e| format!("Kafka producer for {brokers}: {e}"))?;
        Ok(Writer {
            producer,
            topic: topic.to_string(),
        })
    }

    /// Queues one message (partitioned by key).
    pub fn send(
        &self,
        key: Option<&[u8]>,
        value: &[u8],
        headers: Option<OwnedHeaders>,
    ) -> Result<(), String> {
        loop {
            let mut record = BaseRecord::to(&self.topic).payload(value);
            if let Some(k) = key {
                record = record.key(k);
            }
            if let Some(h) = &headers {
                record = record.headers(h.clone());
            }
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(format!("Kafka topic `{}`: {e}", self.topic)),
            }
        }
    }

    /// Waits until every queued message is delivered; an error names the failures.
    pub fn flush(&self) -> Result<(), String> {
        self.producer
            .flush(Duration::from_secs(60))
            .map_err(|e| format!("Kafka topic `{}`: flush: {e}", self.topic))?;
        let report = self.producer.context();
        let failed = report.failed.swap(0, Ordering::Relaxed);
        if failed > 0 {
            let last = report.last_error.lock().expect("delivery lock").take();
            return Err(format!(
                "Kafka topic `{}`: {failed} message(s) not delivered ({})",
                self.topic,
                last.unwrap_or_default()
            ));
        }
        Ok(())
    }
}

/// The consumer side; `fetch` from one thread, `committer()` (and `decoder()`) from others.
pub struct Source {
    consumer: Arc<BaseConsumer>,
    dead_letters: Option<Arc<Writer>>,
    partitions: Vec<Assigned>,
}

/// An assigned partition. The names are shared by every message fetched from it, so the
/// per-message path allocates no strings.
struct Assigned {
    topic: Arc<str>,
    partition: i32,
    /// `topic[partition]`
    source: Arc<str>,
    /// High watermark when opened: `caught_up` compares against it.
    end: i64,
    /// Next offset to fetch.
    position: i64,
}

impl Source {
    /// Assigns this process's partitions, each starting at `start` or at the beginning.
    pub fn open(cfg: &SourceConfig, start: &Offsets) -> Result<Source, String> {
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &cfg.brokers)
            .set("group.id", &cfg.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            // Some brokers (tansu) hold every fetch for the full wait even with data ready:
            // at librdkafka's 500 ms default that caps a partition near 70k messages/s, at
            // 10 ms it reaches about 300k/s. Kafka itself answers as soon as data is there.
            .set("fetch.wait.max.ms", "10");
        for (k, v) in &cfg.properties {
            cc.set(k, v);
        }
        let consumer: BaseConsumer = cc
            .create()
            .map_err(|e| format!("Kafka consumer for {}: {e}", cfg.brokers))?;
        let mut partitions = Vec::new();
        for topic in &cfg.topics {
            let md = consumer
                .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
                .map_err(|e| format!("Kafka {}: metadata of topic `{topic}`: {e}", cfg.brokers))?;
            let t = md
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .filter(|t| t.error().is_none() && !t.partitions().is_empty())
                .ok_or_else(|| format!("Kafka {}: topic `{topic}` does not exist", cfg.brokers))?;
            partitions.extend(t.partitions().iter().map(|p| (topic.clone(), p.id())));
        }
        partitions.sort();
        let (index, processes) = (cfg.share.0, cfg.share.1.max(1));
        let mine: Vec<(String, i32)> = partitions
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % processes == index)
            .map(|(_, p)| p)
            .collect();
        let mut tpl = TopicPartitionList::new();
        let mut assigned = Vec::new();
        for (topic, partition) in &mine {
            let (low, high) = consumer
                .fetch_watermarks(topic, *partition, REQUEST_TIMEOUT)
                .map_err(|e| {
                    format!(
                        "Kafka {}: watermarks of {topic}[{partition}]: {e}",
                        cfg.brokers
                    )
                })?;
            let from = start.get(&(topic.clone(), *partition)).copied();
            let offset = match from {
                Some(o) => Offset::Offset(o),
                None => Offset::Beginning,
            };
            tpl.add_partition_offset(topic, *partition, offset)
                .map_err(|e| format!("Kafka: {topic}[{partition}]: {e}"))?;
            assigned.push(Assigned {
                topic: topic.as_str().into(),
                partition: *partition,
                source: format!("{topic}[{partition}]").into(),
                end: high,
                position: from.unwrap_or(low),
            });
        }
        consumer
            .assign(&tpl)
            .map_err(|e| format!("Kafka {}: assign: {e}", cfg.brokers))?;
        let dead_letters = match &cfg.dead_letter_topic {
            Some(t) => Some(Arc::new(Writer::new(&cfg.brokers, t, &cfg.properties)?)),
            None => None,
        };
        Ok(Source {
            consumer: Arc::new(consumer),
            dead_letters,
            partitions: assigned,
        })
    }

    /// The next message as fetched, not yet decoded (see [`Decoder`]), `None` when none came
    /// within `timeout`; advances the position `caught_up` reads. Errors are the client's (a
    /// broker down, say); librdkafka keeps retrying, so they are reports, not the end.
    pub fn fetch(&mut self, timeout: Duration) -> Option<Result<Fetched, String>> {
        let msg = match self.consumer.poll(timeout)? {
            Ok(m) => m,
            Err(e) => return Some(Err(e.to_string())),
        };
        let (partition, offset) = (msg.partition(), msg.offset());
        let k = match self
            .partitions
            .iter()
            .position(|p| p.partition == partition && *p.topic == *msg.topic())
        {
            Some(k) => k,
            None => {
                return Some(Err(format!(
                    "message from unassigned {}[{partition}]",
                    msg.topic()
                )))
            }
        };
        let p = &mut self.partitions[k];
        p.position = offset + 1;
        Some(Ok(Fetched {
            topic: p.topic.clone(),
            partition,
            source: p.source.clone(),
            offset,
            key: msg.key().map(<[u8]>::to_vec),
            payload: msg.payload().unwrap_or_default().to_vec(),
        }))
    }

    /// A decoder for this source's messages (with its dead-letter topic), for any thread.
    pub fn decoder(&self) -> Decoder {
        Decoder {
            dead_letters: self.dead_letters.clone(),
        }
    }

    /// Every assigned partition has reached the high watermark seen when opened.
    pub fn caught_up(&self) -> bool {
        self.partitions.iter().all(|p| p.position >= p.end)
    }

    /// Handle for committing progress from another thread.
    pub fn committer(&self) -> Committer {
        Committer {
            consumer: self.consumer.clone(),
            dead_letters: self.dead_letters.clone(),
        }
    }
}

/// One message as fetched, before decoding.
pub struct Fetched {
    pub topic: Arc<str>,
    pub partition: i32,
    source: Arc<str>,
    pub offset: i64,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

/// Decodes fetched messages; a message that does not decode goes to the dead-letter topic
/// (original key and bytes, the reason in headers). Decoding can run on its own thread, apart
/// from fetching: librdkafka hands over one message per call, which is a thread's work already.
#[derive(Clone)]
pub struct Decoder {
    dead_letters: Option<Arc<Writer>>,
}

impl Decoder {
    /// The message's record (or why it is not one); `Err` only when its dead letter could not
    /// be queued.
    pub fn decode(&self, f: Fetched) -> Result<Polled, String> {
        let Fetched {
            topic,
            partition,
            source,
            offset,
            key,
            payload: bytes,
        } = f;
        let record = match std::str::from_utf8(&bytes) {
            _ if bytes.is_empty() => Err(bad(
                &source,
                offset,
                "empty message (no JSON object)",
                &bytes,
            )),
            Ok(text) => decode_json(&source, offset as u64, text, || {
                format!("{source}@{offset}")
            }),
            Err(e) => Err(bad(
                &source,
                offset,
                &format!("message is not UTF-8 ({e})"),
                &bytes,
            )),
        };
        if let (Err(e), Some(dlq)) = (&record, &self.dead_letters) {
            let mut headers = OwnedHeaders::new()
                .insert(Header {
                    key: HEADER_ERROR,
                    value: Some(e.reason.as_str()),
                })
                .insert(Header {
                    key: HEADER_SOURCE,
                    value: Some(format!("{source}@{offset}").as_str()),
                });
            if let Some(f) = &e.field {
                headers = headers.insert(Header {
                    key: HEADER_FIELD,
                    value: Some(f.as_str()),
                });
            }
            dlq.send(key.as_deref(), &bytes, Some(headers))
                .map_err(|err| format!("dead letter of {source}@{offset}: {err}"))?;
        }
        Ok(Polled {
            topic,
            partition,
            source,
            offset,
            record,
        })
    }
}

fn bad(source: &str, offset: i64, reason: &str, bytes: &[u8]) -> RecordError {
    RecordError {
        source_name: source.to_string(),
        row: offset as u64,
        field: None,
        reason: reason.to_string(),
        raw: String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Commits offsets once the epoch holding them is durable.
#[derive(Clone)]
pub struct Committer {
    consumer: Arc<BaseConsumer>,
    dead_letters: Option<Arc<Writer>>,
}

impl Committer {
    /// Flushes the dead letters (so none is committed past before it is delivered), then
    /// commits `offsets` (next offset to read) synchronously for the group.
    pub fn commit(&self, offsets: &Offsets) -> Result<(), String> {
        if let Some(dlq) = &self.dead_letters {
            dlq.flush()?;
        }
        if offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in offsets {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))
                .map_err(|e| format!("Kafka: {topic}[{partition}]: {e}"))?;
        }
        self.consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| format!("Kafka commit: {e}"))
    }

    /// The group's committed offsets for `topics`' assigned partitions.
    pub fn committed(&self) -> Result<Offsets, String> {
        let tpl = self
            .consumer
            .committed(REQUEST_TIMEOUT)
            .map_err(|e| format!("Kafka committed offsets: {e}"))?;
        Ok(tpl
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
                _ => None,
            })
            .collect())
    }
}

/// Reads a message's header as text.
pub fn header<'a>(headers: &'a impl Headers, key: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}
