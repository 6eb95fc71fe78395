//! Refused joins counted per campaign, UTC day and reason, across instances (docs/design.md §20):
//! "1,000 units, 48,213 people turned away".
//!
//! A refusal costs its request no round trip: the API counts each refused join in this process's
//! memory ([`RefusalCounter`]), and one task per instance adds what it counted to MySQL twice a
//! second ([`flush`]), where every instance's counts meet. Counts are statistics: an instance
//! killed between two flushes loses what it counted since the last, never a win.
//!
//! # Layout
//! - [`reason`]: which answers count as refusals, by their error code.
//! - [`counter`]: [`RefusalCounter`], the in-memory counts since the last flush.
//! - [`store`]: the `campaign_refusal` table: adding counts, reading totals and days.
//! - [`flush`]: the task that moves the counts into the table.

pub mod counter;
pub mod flush;
pub mod reason;
pub mod store;

pub use counter::RefusalCounter;
pub use reason::Reason;
pub use store::{RefusalTotals, RefusalView};
