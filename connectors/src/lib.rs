//! nashflow connectors: sources and sinks. Today: the best-response job sinks. File sources
//! are the batch readers of `nashflow-schemas`; Kafka and simulators arrive with their issues.

pub mod jobs;
