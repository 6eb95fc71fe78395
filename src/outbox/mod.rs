//! The outbox table (docs/design.md §5): every event is written to `outbox_event` in the
//! transaction that makes it true, and the relay (`crate::relay`) publishes it from there. What
//! the rows carry is the Kafka contract of `crate::events`.
//! - [`table`]: the `outbox_event` INSERT, the only place that writes outbox rows, and the row's
//!   status.

pub mod table;

pub use table::{NewOutboxEvent, OutboxStatus};

/// Where a service's events go: the topic its outbox rows name, and the relay's wakeup, which
/// a commit that wrote a row notifies.
#[derive(Clone)]
pub struct Sink {
    pub topic: std::sync::Arc<str>,
    pub wakeup: std::sync::Arc<tokio::sync::Notify>,
}
