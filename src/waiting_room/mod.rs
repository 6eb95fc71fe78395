//! The waiting room in front of the gate (docs/design.md §16): for a campaign with `QUEUE` or
//! `RAFFLE` admission, users queue first, are admitted at the campaign's rate while free stock
//! lasts, and join with the signed, single-use admission token they are given. The queue lives in
//! Redis beside the campaign's gate keys (`lua/queue.lua`), so every instance serves one queue and
//! the join's gate step checks the admission together with the stock.
//!
//! # Layout
//! - [`token`]: signing and checking admission tokens, raffle places, ticket ids.
//! - [`room`]: [`WaitingRoom`], the service the queue endpoints hold: enqueue, find and poll a
//!   ticket (its checks in between), metrics.
//! - [`buckets`]: a bucketed campaign's room (docs/design.md §21): told the campaign's standing
//!   by MySQL, its admissions copied into their holders' home buckets.

pub mod buckets;
pub mod room;
pub mod token;

pub use room::{HeldTicket, QueueView, RoomError, WaitingRoom};
pub use token::{AdmissionSigner, TokenRefusal};
