//! The outbox: the table every event is written to, and the contract of the events it carries
//! (docs/design.md §4, §5). One place for both, so the writer (the participation transaction and the
//! sync path), the relay, the consumers, the tests and the benchmarks cannot drift apart:
//! - [`event`]: `ParticipationAccepted`, the value of a win's message;
//! - [`lifecycle`]: the later events of a win (`ParticipationConfirmed`, `ParticipationCancelled`);
//! - [`control`]: the events of a campaign's live controls (`CampaignStockChanged`, …);
//! - [`contract`]: the check consumers run on every message, dispatching on `eventType`
//!   ([`ParticipationEvent`]; `event_type` reads it);
//! - [`headers`]: header names, the stored header map, conversion to and from Kafka headers;
//! - [`dlq`]: dead-letter topic names and the `dlq_*` headers (relay and consumers);
//! - `rfc3339`: reading the events' times;
//! - [`table`]: the `outbox_event` INSERT;
//! - [`asyncapi`]: the AsyncAPI document of the topics, generated from the above.
//!
//! The payload and headers are built once, in the writing transaction, and stored in the outbox
//! row as text; the relay sends those bytes unchanged. That is what makes a duplicate (a
//! re-publish after a crash or an expired lease) byte-identical to the original.

pub mod asyncapi;
pub mod contract;
pub mod control;
pub mod dlq;
pub mod event;
mod event_type;
pub mod headers;
pub mod lifecycle;
mod rfc3339;
pub mod table;

pub use contract::{ContractError, ParticipationEvent};
pub use event::ParticipationAccepted;
pub use headers::Headers;
pub use table::{NewOutboxEvent, OutboxStatus};
