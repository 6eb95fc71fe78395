//! The relay's Kafka producers: idempotent (`enable.idempotence=true`, `acks=all`), batching,
//! replaced when librdkafka reports a fatal error (after which every send fails).
//!
//! Two producers share the configuration: the main one, bounded by `KAFKA_MESSAGE_MAX_BYTES`,
//! and the dead-letter one, which allows the largest message Kafka clients accept so that a row
//! refused for its size can still reach the DLQ.

use std::sync::{Arc, RwLock};

use rdkafka::{
    config::ClientConfig, error::KafkaResult, producer::FutureProducer, producer::Producer,
};

use crate::config::KafkaSettings;

/// The dead-letter producer's `message.max.bytes` (the broker may still refuse less).
const DLQ_MESSAGE_MAX_BYTES: usize = 100_000_000;

fn config(bootstrap: &str, settings: &KafkaSettings, message_max_bytes: usize) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("compression.type", "lz4")
        .set(
            "message.timeout.ms",
            settings.message_timeout.as_millis().to_string(),
        )
        .set("message.max.bytes", message_max_bytes.to_string())
        .set("log_level", "4");
    c
}

/// A producer that can be swapped for a new one; cloning the handle shares the slot.
#[derive(Clone)]
pub struct ProducerSlot {
    current: Arc<RwLock<Arc<FutureProducer>>>,
    config: Arc<ClientConfig>,
    name: &'static str,
}

impl ProducerSlot {
    fn new(config: ClientConfig, name: &'static str) -> KafkaResult<Self> {
        let producer: FutureProducer = config.create()?;
        Ok(Self {
            current: Arc::new(RwLock::new(Arc::new(producer))),
            config: Arc::new(config),
            name,
        })
    }

    pub fn get(&self) -> Arc<FutureProducer> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces `seen` if it is in a fatal state (and still the current producer: several
    /// workers may notice the same failure). Returns whether it replaced it.
    pub fn replace_if_fatal(&self, seen: &Arc<FutureProducer>) -> bool {
        let Some((code, reason)) = seen.client().fatal_error() else {
            return false;
        };
        let mut slot = self.current.write().unwrap_or_else(|p| p.into_inner());
        if !Arc::ptr_eq(&slot, seen) {
            return false;
        }
        match self.config.create::<FutureProducer>() {
            Ok(fresh) => {
                tracing::warn!(producer = self.name, ?code, %reason, "The Kafka producer hit a fatal error; replaced it.");
                *slot = Arc::new(fresh);
                true
            }
            Err(e) => {
                tracing::error!(producer = self.name, error = %e, "Could not replace a fatal Kafka producer.");
                false
            }
        }
    }

    /// Waits (bounded) for queued messages to be delivered.
    pub fn flush(&self, timeout: std::time::Duration) -> KafkaResult<()> {
        self.get().flush(timeout)
    }
}

/// The main and the dead-letter producers.
#[derive(Clone)]
pub struct Producers {
    pub main: ProducerSlot,
    pub dlq: ProducerSlot,
}

impl Producers {
    /// Creating a producer does not connect: this succeeds while Kafka is down, and the relay's
    /// rows wait in the outbox until it is back.
    pub fn new(bootstrap: &str, settings: &KafkaSettings) -> KafkaResult<Self> {
        Ok(Self {
            main: ProducerSlot::new(
                config(bootstrap, settings, settings.message_max_bytes),
                "main",
            )?,
            dlq: ProducerSlot::new(config(bootstrap, settings, DLQ_MESSAGE_MAX_BYTES), "dlq")?,
        })
    }
}
