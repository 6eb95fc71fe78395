//! Kafka: producer set-up, the embedded broker used when no Kafka is configured, and the message
//! contract with consumers.

pub mod contract;
pub mod embedded;
pub mod producer;

pub use embedded::EmbeddedBroker;
pub use producer::Producers;
