//! nashflow connectors: sources and sinks (files, Kafka, simulators, archives, job sinks). The
//! batch readers live in `nashflow-schemas` today; streaming sources arrive with the engine.
