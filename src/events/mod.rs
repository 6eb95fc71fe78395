//! The Kafka contract (docs/design.md §4, docs/kafka-contract.md): the events a campaign's topic
//! carries, their headers and dead-letter headers, the check consumers run on every message, and
//! the AsyncAPI document generated from them. One place, so that the writers (the join's
//! transaction, the baseline, a win's state change, a live control), the relay, the consumers, the
//! tests and the benchmarks cannot drift apart:
//! - [`accepted`]: `ParticipationAccepted`, the value of a win's message;
//! - [`lifecycle`]: the later events of a win (`ParticipationConfirmed`, `ParticipationCancelled`, …);
//! - [`control`]: the events of a campaign's live controls (`CampaignStockChanged`, …);
//! - [`contract`]: the check consumers run on every message, dispatching on `eventType`
//!   ([`ParticipationEvent`]; `event_type` reads it);
//! - [`headers`]: header names, the stored header map, conversion to and from Kafka headers;
//! - [`dlq`]: dead-letter topic names, the `dlq_*` headers and the relay's reasons;
//! - `rfc3339`: reading the events' times;
//! - [`asyncapi`]: the AsyncAPI document of the topics, generated from the above.
//!
//! The payload and headers are built once, in the writing transaction, and stored in the outbox
//! row as text (`crate::outbox`); the relay sends those bytes unchanged. That is what makes a
//! duplicate (a re-publish after a crash or an expired lease) byte-identical to the original.

pub mod accepted;
pub mod asyncapi;
pub mod contract;
pub mod control;
pub mod dlq;
mod event_type;
pub mod headers;
pub mod lifecycle;
mod rfc3339;

pub use accepted::ParticipationAccepted;
pub use contract::{ContractError, ParticipationEvent};
pub use headers::Headers;
