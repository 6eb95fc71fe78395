//! What request handlers share: connections, services, the admin token and the reported state of
//! background components.

use std::sync::{Arc, Mutex};

use crate::db::Db;
use crate::{
    config::Secret,
    consumer::ConsumerHandle,
    metrics::Metrics,
    participation::gate::Gate,
    participation::{sync::SyncParticipationService, ParticipationService},
};

pub struct AppState {
    pub db: Db,
    pub gate: Gate,
    pub participations: ParticipationService,
    pub sync: SyncParticipationService,
    pub admin_token: Secret,
    pub components: Arc<Components>,
    pub metrics: Arc<Metrics>,
    /// The consumers running in this process (`CONSUMERS`), for `/health/ready`.
    pub consumers: Vec<ConsumerHandle>,
}

/// Human-readable state of Kafka and the relay, written by their owners, read by `/health/ready`.
pub struct Components {
    inner: Mutex<ComponentReport>,
}

#[derive(Debug, Clone)]
pub struct ComponentReport {
    pub kafka: String,
    pub relay: String,
}

impl Components {
    pub fn new(kafka: &str, relay: &str) -> Self {
        Self {
            inner: Mutex::new(ComponentReport {
                kafka: kafka.into(),
                relay: relay.into(),
            }),
        }
    }

    pub fn snapshot(&self) -> ComponentReport {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_kafka(&self, state: impl Into<String>) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).kafka = state.into();
    }

    pub fn set_relay(&self, state: impl Into<String>) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).relay = state.into();
    }
}
