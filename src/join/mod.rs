//! The join (docs/design.md §6): a user asks for units of a campaign and wins or is refused.
//! The outbox path passes three named steps: **admit** (the campaign's window and state, the
//! caller's identity and limits), **reserve** (one atomic call to the Redis gate), **settle** (the
//! win handed to the write path, `crate::write`, then the reservation closed, or compensated in
//! Redis when anything after the gate fails). [`service`] composes them; the naive synchronous
//! path is [`baseline`].
//!
//! # Layout, in the order a join meets it
//! - [`request`]: the request, the accepted win and the errors, shared by both paths.
//! - [`service`]: [`ParticipationService`], the join composed of its steps.
//! - [`admit`]: the campaign checks both paths make before anything is reserved.
//! - [`reserve`]: the gate's step: one `lua/reserve.lua` call, a rebuild when the gate lost the
//!   campaign, the sold-out memo.
//! - [`in_flight`]: how long a refusal waits for the reservations in flight, for joins, carts
//!   and a dry bucket alike.
//! - [`tail`]: a bucketed campaign's dry bucket (docs/design.md §21): the bucket's policy
//!   (`bucket::policy`) carried out, units from the pool or a sibling, and the MySQL read a
//!   SOLD_OUT stands on; [`steal_in_doubt`]: a transfer from a sibling cut off by an outage,
//!   settled as soon as MySQL answers.
//! - [`settle`]: past the gate, in a task of its own: the win written by the write path
//!   (`crate::write`: on this instance or its campaign's writer), then what its outcome means
//!   for the reservation and the answer.
//! - [`cart`]: a purchase of several campaigns of a group, all or none (§22), over the reserve
//!   and settle steps ([`cart::service::Carts`]).
//! - [`baseline`]: the naive synchronous path kept for comparison (no Redis, no outbox).

pub(crate) mod admit;
pub(crate) mod baseline;
pub(crate) mod cart;
mod in_flight;
pub(crate) mod request;
pub(crate) mod reserve;
pub(crate) mod service;
pub(crate) mod settle;
pub(crate) mod steal_in_doubt;
pub(crate) mod tail;

pub use request::{Accepted, AdmissionRefusal, JoinError, JoinRequest};
pub use service::ParticipationService;
