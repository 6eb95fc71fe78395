//! The consumer framework (docs/design.md §2.8, §11) and the two consumers built on it.
//!
//! Kafka delivers at least once; a consumer built here applies each event's effect exactly once:
//! 1. [`runner`] reads the topic with a `StreamConsumer` (manual offsets), a batch at a time:
//!    what is already waiting, up to `CONSUMER_BATCH_SIZE`; a lone message goes at once.
//! 2. Each message passes the contract check (`events::ParticipationEvent::from_message`, which
//!    dispatches on `eventType`: a win, its confirmation or its cancellation, or a campaign's
//!    control); one that fails, an unknown `eventType` included, is poison and goes to
//!    `<topic>.<name>.dlq` ([`dead_letter`]), never blocking the messages behind it.
//! 3. The rest are applied in one MySQL transaction: the [`inbox`] rows (`consumer_inbox`,
//!    primary key `(consumer, event_id)`) and the [`Handler`]'s effect, for the events whose
//!    inbox row did not exist yet. A redelivered event finds its row and is skipped. A handler
//!    whose effect is itself a row per event keyed by the event id keeps its record there
//!    instead ([`Record::Effect`]: rewards' `reward_grant`), and writes no inbox row.
//! 4. Only after that commit are the batch's offsets stored; they reach Kafka every
//!    `CONSUMER_COMMIT_INTERVAL_MS`, on a rebalance and at shutdown. A crash in between
//!    redelivers, and step 3 skips what was applied.
//! 5. A failed transaction is retried, the same batch, with backoff, forever: a database outage
//!    blocks the consumer, it never skips. Partitions are read in order and batches applied one
//!    after another, so a key's events are applied in their order.
//! 6. What the broker dropped before it was read (its retention passed a consumer that lagged)
//!    cannot be applied: [`continuity`] names the offsets in an ERROR and counts them
//!    (`result="skipped"`).
//!
//! A new consumer is a [`Handler`] (a name and an `apply` on a batch of new events) and a line
//! in [`ConsumerName`] (the value of `CONSUMERS`) and in [`handler`]; `docs/kafka-contract.md` walks through writing one.

mod apply;
mod client;
mod context;
mod continuity;
pub mod dead_letter;
pub mod inbox;
mod read;
pub mod report;
pub mod rewards;
pub mod runner;
pub mod stats;

use async_trait::async_trait;
use sea_orm::DbErr;

pub use crate::config::consumers::ConsumerName;
pub use report::{ConsumerReport, ConsumerStatus};
pub use runner::{ConsumerDeps, ConsumerHandle};

use crate::{db::Txn, events::ParticipationEvent};

/// A received event that passed the contract check.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// Any of the topic's event types; a campaign's events (its wins' and its controls') arrive
    /// in the order they committed.
    pub event: ParticipationEvent,
    pub partition: i32,
    pub offset: i64,
    /// The message's `traceparent` header, when it had one.
    pub traceparent: Option<String>,
}

/// Where a consumer keeps the record of the events it applied, the record a redelivery is
/// recognized by (docs/design.md §11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// One `consumer_inbox` row per event, written by the framework beside the effect.
    Inbox,
    /// The effect itself. Each event that changes anything inserts one row keyed by its event id
    /// into `table` (its column `event_id`, the id as text), with a plain INSERT that fails on
    /// that key when the event comes again; an event that changes nothing writes nothing, so
    /// applying it again changes nothing either. No inbox row is written: a row less per event.
    Effect { table: &'static str },
}

/// What a consumer does with its events.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Applies the effect of `events` inside `txn`, the transaction that also writes their record
    /// ([`Record`]). Every event here is new to this consumer as far as the record knows
    /// (duplicates were filtered out, also within the batch), in the order they were read (per
    /// key, the order they were committed). An error rolls the whole batch back and it is retried.
    async fn apply(&self, txn: &Txn, events: &[Delivered]) -> Result<(), DbErr>;

    /// Where this consumer's record of applied events is: the inbox unless its effect keeps it.
    fn record(&self) -> Record {
        Record::Inbox
    }
}

/// The handler of a consumer this service ships.
pub fn handler(name: ConsumerName) -> std::sync::Arc<dyn Handler> {
    match name {
        ConsumerName::Stats => std::sync::Arc::new(stats::StatsHandler),
        ConsumerName::Rewards => std::sync::Arc::new(rewards::RewardsHandler),
    }
}
