//! nashflow connectors: sources and sinks. The best-response job sinks ([`jobs`]), Kafka
//! ([`kafka`]: the match source with its dead-letter topic, and a producer) and the durable
//! state directory ([`state`]). File sources are the readers of `nashflow-schemas`, driven by
//! `nashflow run`.

pub mod jobs;
pub mod kafka;
pub mod state;
