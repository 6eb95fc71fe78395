//! Integration tests against real MariaDB and Redis: the suite's own servers, which
//! `scripts/test.sh` starts and stops (`scripts/test-services.sh`), and librdkafka's mock
//! cluster for Kafka. Each test has its own database and Redis key prefix (`support/spawn.rs`).
//! Grouped by what they protect; docs/design.md §19 maps each guarantee to its tests.

mod support;
// The harness, under short paths for every test (`crate::spawn::spawn_app`, ...).
use support::{
    binary, consumer_helpers, db, drift, hooks, http, jwt, kafka, pki, proxy, spawn, wait,
};

mod api;
mod consumers;
mod drops;
mod faults;
mod live_view;
mod operations;
mod participation;
mod relay;
mod waiting_room;
