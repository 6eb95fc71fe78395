//! What request handlers share: connections, services, the admin token and the live state of
//! background components.

use std::sync::Arc;

use crate::db::Db;
use crate::{
    config::Secret,
    consumer::ConsumerHandle,
    gate::Gate,
    kafka::KafkaReachability,
    metrics::Metrics,
    participation::{sync::SyncParticipationService, ParticipationService},
    relay::leadership::LeadershipStatus,
};

pub struct AppState {
    pub db: Db,
    pub gate: Gate,
    pub participations: ParticipationService,
    pub sync: SyncParticipationService,
    pub admin_token: Secret,
    pub components: Components,
    pub metrics: Arc<Metrics>,
    /// The consumers running in this process (`CONSUMERS`), for `/health/ready`.
    pub consumers: Vec<ConsumerHandle>,
}

/// The live state of Kafka and the relay, read by `/health/ready` and the admin summary.
pub struct Components {
    /// Written by the producers' contexts (`kafka/health.rs`).
    pub kafka: Arc<KafkaReachability>,
    /// `None` when the relay is off (`RELAY_ENABLED=false`).
    pub relay: Option<Arc<LeadershipStatus>>,
    /// `RELAY_SHARDS`, reported also when the relay is off.
    pub relay_shards: u32,
}
