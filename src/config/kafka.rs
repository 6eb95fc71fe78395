//! The `Kafka` settings shared by every client the service creates: the brokers (or the embedded
//! one), extra librdkafka properties, the topic, and the produce limits.

use std::time::Duration;

use clap::Args;

use crate::config::{
    values::{kafka_properties, millis, number, topic, unless_blank},
    KafkaProperties, DEFAULT_TOPIC,
};

#[derive(Debug, Clone, Args)]
pub struct KafkaSettings {
    /// Kafka brokers; unset starts the embedded broker (librdkafka's mock cluster, for trying the service)
    // Blank is unset (see `values`, on `std::option::Option`).
    #[arg(id = "KAFKA_BOOTSTRAP_SERVERS", long = "kafka-bootstrap-servers", env,
          default_value = "", hide_default_value = true, value_parser = unless_blank)]
    pub bootstrap_servers: std::option::Option<String>,
    /// Extra librdkafka settings for every client, `key=value` pairs separated by commas (`\,` for a comma in a value), e.g. TLS/SASL
    #[arg(id = "KAFKA_PROPERTIES", long = "kafka-properties", env, hide_env_values = true,
          default_value = "", hide_default_value = true, value_parser = kafka_properties)]
    pub properties: KafkaProperties,
    /// The events' topic; dead letters go to `<topic>.dlq` and `<topic>.<consumer>.dlq`
    #[arg(id = "KAFKA_TOPIC", long = "kafka-topic", env, default_value = DEFAULT_TOPIC,
          value_parser = topic)]
    pub topic: String,
    /// Partitions of the topics created on the embedded broker (1–1024)
    #[arg(id = "KAFKA_PARTITIONS", long = "kafka-partitions", env, default_value_t = 8,
          value_parser = clap::value_parser!(i32).range(1..=1_024))]
    pub partitions: i32,
    /// Delivery deadline of the sync path and the DLQ; the relay purges a producer whose oldest row waited this long (1000–3600000)
    // The relay's own produces have no deadline: a message that timed out while a younger one of
    // its key got through would break per-key order, so the relay waits for Kafka instead
    // (bounded by `RELAY_MAX_IN_FLIGHT`) and reports the outage.
    #[arg(id = "KAFKA_MESSAGE_TIMEOUT_MS", long = "kafka-message-timeout-ms", env,
          default_value = "10000", value_parser = millis(1_000..=3_600_000))]
    pub message_timeout: Duration,
    /// Largest message the relay sends; larger rows are dead-lettered (1000–100000000)
    // The broker's own limit must be at least this.
    #[arg(id = "KAFKA_MESSAGE_MAX_BYTES", long = "kafka-message-max-bytes", env,
          default_value_t = 1_000_000, value_parser = number::<usize>(1_000..=100_000_000))]
    pub message_max_bytes: usize,
}
