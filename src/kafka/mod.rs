//! Kafka: producer set-up and the embedded broker used when no Kafka is configured. The message
//! contract lives with the outbox (`crate::outbox`).

pub mod embedded;
pub mod producer;

pub use embedded::EmbeddedBroker;
pub use producer::Producers;
