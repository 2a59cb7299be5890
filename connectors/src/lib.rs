//! nashflow connectors: sources and sinks. Today: the best-response job sinks ([`jobs`]). File
//! sources are the readers of `nashflow-schemas`, driven by `nashflow run`; Kafka and
//! simulator sources belong to their own issues.

pub mod jobs;
