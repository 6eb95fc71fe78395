//! firstcome: first-come-first-served campaigns on a transactional outbox.
//!
//! A participation passes an atomic Redis Lua gate, then the win and its event commit to MySQL in
//! one transaction (participation row + outbox row); a relay publishes outbox rows to Kafka.
//!
//! # Layout
//! - [`config`]: typed settings from the environment (clap arguments with `env`), `KAFKA_PROPERTIES`.
//! - [`db`]: MySQL pools, the deadline on every call, and what a MySQL error means.
//! - [`telemetry`]: log and trace-export set-up.
//! - [`trace`]: W3C trace context (request → outbox row → Kafka → consumers) and OTLP export.
//! - [`startup`]: `Application` (builder / port / run_until_stopped), the start-up and shutdown
//!   order, and the API's resources built from the services.
//! - [`server`]: the HTTP server: connection caps, client deadlines (head, body, idle), the
//!   accept loop and its graceful shutdown, the open-file limit.
//! - [`shutdown`]: what keeps a shutdown bounded: the watchdog thread, blocking client calls off
//!   the async workers, the names of what is still running.
//! - [`state`]: the live state of Kafka and the relay that health and admin report.
//! - [`api`]: poem-openapi resources (each holds the services it calls; HTTP concerns only), DTOs,
//!   the error type and HTTP middleware.
//! - [`identity`]: verified user identity (`USER_AUTH=jwt`): the JWT verifier, its keys (a JWKS
//!   file or URL kept current), `firstcome token`.
//! - [`campaign`]: campaign model, repository, service and in-process cache.
//! - [`gate`]: the Redis gate: connection (node, cluster, TLS), typed Lua scripts, rebuild from
//!   MySQL, the sold-out memo.
//! - [`waiting_room`]: the waiting room of `QUEUE` and `RAFFLE` campaigns: tickets, admission at
//!   a rate, signed single-use admission tokens.
//! - [`participation`]: the participation path: admission, the gate's reservation, the
//!   transaction or group commit, settlement and compensation; the sync baseline.
//! - [`kafka`]: producers (and their live view of Kafka's reachability), the embedded broker.
//! - [`outbox`]: the outbox table and the event contract (value, headers, dead letters).
//! - [`consumer`]: the consumer framework (inbox dedupe, batches, DLQ) and the stats and rewards
//!   consumers with the views the API reads.
//! - [`relay`]: claims outbox rows and publishes them to Kafka; shard leadership and its live
//!   status; the outbox's admin operations.
//! - [`refusal`]: refused joins counted per campaign, day and reason, across instances.
//! - [`live`]: the live view: one snapshot per watched campaign and second, shared by its
//!   watchers (the stream behind the console).
//! - [`console`]: the live sale console at `/console`, its files compiled in.
//! - [`metrics`]: Prometheus metrics (`GET /metrics`): one registry per application, the HTTP
//!   middleware, the outbox gauges.

pub mod api;
pub mod campaign;
pub mod config;
pub mod console;
pub mod consumer;
pub mod db;
pub mod gate;
pub mod identity;
pub mod kafka;
pub mod live;
pub mod metrics;
pub mod outbox;
pub mod participation;
pub mod refusal;
pub mod relay;
pub mod server;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod trace;
pub mod waiting_room;
