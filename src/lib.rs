//! firstcome: first-come-first-served campaigns on a transactional outbox.
//!
//! A participation passes an atomic Redis Lua gate, then the win and its event commit to MySQL in
//! one transaction (participation row + outbox row); a relay publishes outbox rows to Kafka.
//!
//! # Layout
//! Rooms by concept, each one concept of docs/design.md; imports run from the top of this list
//! down (resources → services → adapters), and no room imports `startup` or `api`.
//! - [`startup`]: `Application` (builder → handle), start-up and shutdown order, the resources
//!   built from the services, the one test seam's wiring.
//! - [`api`]: the resources only: one poem-openapi `XxxApi` per resource holding its services,
//!   their DTOs, the OpenAPI document.
//! - [`http`]: the HTTP stack both `serve` and `consume` run: the server (connection caps,
//!   deadlines, HTTP/1.1 or capped HTTP/2), the door (request id and span, client address, CORS,
//!   per-client limits, body limit, deadline), admin and user authentication, the error type.
//! - [`console`]: the live sale console at `/console`, its files compiled in.
//! - [`join`]: the join as named steps: admit → reserve (the gate) → settle (the win handed to
//!   the write path, then the reservation closed or compensated); carts; the synchronous
//!   baseline.
//! - [`write`]: the write path, one room: one writer per campaign (the hand-over between
//!   instances), group commit and its lanes, the one transaction every win takes, its guarded
//!   decrements and rows, why a write did not commit, a commit in doubt's settlement.
//! - [`waiting_room`]: the waiting room of `QUEUE` and `RAFFLE` campaigns: tickets, admission at
//!   a rate, signed single-use admission tokens.
//! - [`bot_check`]: the bot check at the waiting room's door: the built-in proof of work or a
//!   captcha provider's `siteverify`.
//! - [`upkeep`]: what keeps Redis following MySQL: the gate's rebuild, the marker loop (the
//!   returns and controls MySQL owes it), the drift audit, the reconciler of reservations left
//!   open.
//! - [`win`]: the life of a win after its acceptance: confirm, cancel, expire, refund, units
//!   back to the sale.
//! - [`live`]: the live view: one snapshot per watched campaign and second.
//! - [`group`]: groups of campaigns under one per-user limit (docs/design.md §22): the MySQL
//!   guard, the campaigns a join checks at the gate.
//! - [`campaign`]: campaigns (model, repository, service, cache) and their live controls.
//! - [`bucket`]: one campaign's stock over several MySQL rows and Redis slots: a user's home
//!   bucket, the deal from the pool, the transfers between rows.
//! - [`refusal`]: refused joins counted per campaign, day and reason, across instances.
//! - [`relay`]: claims outbox rows and publishes them to Kafka; shard leadership; the outbox's
//!   admin operations and gauges.
//! - [`consumer`]: the consumer framework (inbox dedupe, batches, DLQ) and the stats and rewards
//!   consumers with the views the API reads.
//! - [`gate`]: Redis only: the connection (node, cluster, TLS), the typed Lua scripts, the
//!   sold-out memo, the writers' heartbeats and mailboxes.
//! - [`outbox`]: the `outbox_event` table's INSERT.
//! - [`events`]: the Kafka contract: events, headers, dead letters, the consumers' check, the
//!   AsyncAPI document.
//! - [`identity`]: verified user identity (`USER_AUTH=jwt`): the verifier, its keys (a JWKS
//!   file or URL kept current), `firstcome token`.
//! - [`kafka`]: producers and their view of Kafka's reachability, the embedded broker.
//! - [`telemetry`]: logs, Prometheus metrics, W3C trace context and OTLP export.
//! - [`db`]: MySQL pools, the deadline on every call, what a MySQL error means.
//! - [`shutdown`]: what keeps a shutdown bounded: the watchdog thread, blocking client calls off
//!   the async workers, the names of what is still running.
//! - [`config`]: typed settings, one declaration per variable.
//! - [`hooks`]: the one test seam, given to the builder; inert in production.

pub mod api;
pub mod bot_check;
pub mod bucket;
pub mod campaign;
pub mod config;
pub mod console;
pub mod consumer;
pub mod db;
pub mod events;
pub mod gate;
pub mod group;
pub mod hooks;
pub mod http;
pub mod identity;
pub mod join;
pub mod kafka;
pub mod live;
pub mod outbox;
pub mod refusal;
pub mod relay;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
pub mod upkeep;
pub mod waiting_room;
pub mod win;
pub mod write;
