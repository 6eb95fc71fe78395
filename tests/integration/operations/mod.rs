//! Operating the service (docs/design.md §8, §12, §13): configuration, health, metrics, traces,
//! the dashboard, Redis Cluster, TLS to Redis and MySQL.

mod configuration;
mod dashboard;
mod exposure;
mod health;
pub(crate) mod metrics;
mod migrations;
mod mysql_tls;
mod protected_mode;
pub(crate) mod redis_cluster;
mod redis_tls;
mod tracing;
