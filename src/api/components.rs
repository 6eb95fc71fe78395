//! [`Components`]: the live state of Kafka and the relay, as the health and admin resources
//! report it.

use std::sync::Arc;

use crate::{kafka::KafkaReachability, relay::leadership::LeadershipStatus};

/// The live state of Kafka and the relay, read by `/health/ready` and the admin summary.
#[derive(Clone)]
pub struct Components {
    /// Written by the producers' contexts (`kafka/health.rs`).
    pub kafka: Arc<KafkaReachability>,
    /// `None` when the relay is off (`RELAY_ENABLED=false`).
    pub relay: Option<Arc<LeadershipStatus>>,
    /// `RELAY_SHARDS`, reported also when the relay is off.
    pub relay_shards: u32,
}
