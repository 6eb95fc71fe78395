//! Kafka: the message contract with consumers (producer set-up and the embedded broker join it
//! with the relay).

pub mod contract;
