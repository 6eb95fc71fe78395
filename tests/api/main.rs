//! Integration tests against real MariaDB and Redis: the suite's own servers, which
//! `scripts/test.sh` starts and stops (`scripts/test-services.sh`).
//! Each test has its own database and Redis key prefix; see `helpers.rs`.

mod asyncapi;
mod boundary_sweep;
mod campaigns;
mod configuration;
mod consumer_faults;
mod consumer_group;
mod consumer_helpers;
mod consumer_redelivery;
mod consumers;
mod crash;
mod dashboard;
mod dependency_faults;
mod gate_rebuild;
mod group_commit;
mod health;
mod helpers;
mod metrics;
mod mysql_black_hole;
mod mysql_tls;
mod openapi;
mod participation_faults;
mod participation_rules;
mod pki;
mod proxy;
mod redis_cluster;
mod redis_tls;
mod relay;
mod relay_faults;
mod relay_order;
mod shutdown;
mod sync_path;
mod tracing;
mod validation;
