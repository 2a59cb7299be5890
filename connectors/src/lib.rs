//! nashflow connectors: sources and sinks. The best-response job sinks ([`jobs`]), Kafka
//! ([`kafka`]: the match source with its dead-letter topic, and a producer), the durable
//! state directory ([`state`]) and the Parquet archive of every epoch ([`archive`]). File sources are the readers of `nashflow-schemas`, driven by
//! `nashflow run`.

pub mod archive;
pub mod jobs;
pub mod kafka;
pub mod state;
