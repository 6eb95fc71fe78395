//! The harness, one concept a file: spawning the app (`spawn`), talking to it over HTTP
//! (`http`), its database and Redis gate as the test sees them (`db`, `gate`), reading Kafka
//! back (`kafka`), the gate's drift after a test (`drift`), polling for a condition (`wait`), the one place that reaches into production
//! internals for tests (`hooks`), the consumers' helpers, the real binary as a child process
//! (`binary`), a TCP proxy for faults, a throwaway PKI, user tokens (`jwt`).

pub mod binary;
pub mod consumer_helpers;
pub mod db;
pub mod drift;
pub mod gate;
pub mod hooks;
pub mod http;
pub mod jwt;
pub mod kafka;
pub mod pki;
pub mod proxy;
pub mod spawn;
pub mod wait;
