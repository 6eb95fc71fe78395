//! Kafka: producer set-up, the producers' view of broker reachability, and the embedded broker
//! used when no Kafka is configured. The message contract lives with the outbox
//! (`crate::outbox`).

pub mod embedded;
pub mod health;
pub mod partition;
pub mod producer;

pub use embedded::EmbeddedBroker;
pub use health::{KafkaMode, KafkaReachability};
pub use producer::{KafkaProducer, Producers};
