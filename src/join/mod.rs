//! The join (docs/design.md §6): a user asks for units of a campaign and wins or is refused.
//! The outbox path passes three named steps: **admit** (the campaign's window and state, the
//! caller's identity and limits), **reserve** (one atomic call to the Redis gate), **settle** (the
//! win and its event written to MySQL in one transaction, shared with the campaign's other wins
//! through group commit, or the reservation compensated in Redis when anything after the gate
//! fails). [`service`] composes them; the naive synchronous path is [`baseline`].
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
//! - [`settle`]: past the gate, in a task of its own: the write, then settlement or
//!   compensation.
//! - [`group_commit`]: a campaign's wins that queue behind its running transaction share the
//!   next one (its queues: `lanes`; a batch over several buckets takes the rows no other
//!   writer holds and leaves the rest for the next); [`closing`]: their reservations closed in
//!   Redis once committed.
//! - [`transaction`]: the one transaction every win takes: a batch of one campaign's wins, or a
//!   purchase's items with its row; the guarded stock decrements (`guard`: the campaign's row or
//!   the buckets'), the deadlines, the group's limit, the rows (`rows`: a win's participation
//!   and its event, built in one place), the commit.
//! - [`write_error`]: why a write of wins did not commit, as the transaction reports it.
//! - [`in_doubt`]: a transaction whose COMMIT went unanswered, settled as soon as MySQL answers
//!   again.
//! - [`cart`]: a purchase of several campaigns of a group, all or none (§22), over the reserve
//!   and settle steps ([`cart::service::Carts`]).
//! - [`baseline`]: the naive synchronous path kept for comparison (no Redis, no outbox).

pub mod admit;
pub mod baseline;
pub mod cart;
pub mod closing;
pub mod group_commit;
mod guard;
pub mod in_doubt;
mod in_flight;
mod lanes;
pub mod request;
pub mod reserve;
pub mod rows;
pub mod service;
pub mod settle;
pub mod steal_in_doubt;
pub mod tail;
pub mod transaction;
pub mod write_error;
pub mod writer;

pub use request::{Accepted, AdmissionRefusal, JoinError, JoinRequest};
pub use service::ParticipationService;
