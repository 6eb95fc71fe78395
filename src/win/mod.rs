//! The life of a win after its acceptance (docs/design.md §14): a hold is confirmed (paid) or
//! cancelled in time, or expires; a confirmed win may be refunded; every end but a confirmation
//! gives its units back to the live sale, to MySQL in the state change's transaction and to the
//! gate right after it (the `gate_return` marker repeats what a crash cut short).
//!
//! # Layout
//! - [`lifecycle`]: [`LifecycleService`](lifecycle::LifecycleService): confirm, cancel, expire,
//!   refund, and the units back to the gate.
//! - [`purchase`]: a purchase's items confirmed, cancelled or expired together (§22).
//! - [`state_change`]: the SQL of a state change: lock the row, change it, return the units,
//!   write the event and the marker.
//! - [`expiry`]: the sweeper of holds past their deadline, on every instance.
//! - [`status`]: the states of a participation (held, confirmed, cancelled, expired, refunded).
//! - [`store`]: participation lookups: by user, by event id, a campaign's page.

pub mod expiry;
pub mod lifecycle;
pub mod purchase;
pub mod state_change;
pub mod status;
pub mod store;

pub use status::ParticipationStatus;
