//! The outbox table (docs/design.md §5): every event is written to `outbox_event` in the
//! transaction that makes it true, and the relay (`crate::relay`) publishes it from there. What
//! the rows carry is the Kafka contract of `crate::events`.
//! - [`table`]: the `outbox_event` INSERT, the only place that writes outbox rows, and the row's
//!   status.

pub mod table;

pub use table::{NewOutboxEvent, OutboxStatus};
