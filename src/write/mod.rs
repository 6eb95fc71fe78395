//! The write path (docs/design.md §23): how a win that passed the gate becomes its rows in MySQL.
//! Every win takes it, a join's or a purchase's items: the join's settle step
//! (`crate::join::settle`) hands a win over and learns what became of it; nothing here knows the
//! join's steps.
//!
//! # Layout, in the order a win meets it
//! - [`writer`]: one writer per campaign: the instance a campaign's wins are written on
//!   (`directory`), the hand-over and the wait for its outcome (`forward`), the writer's side
//!   (`pump`, `post`) and what travels (`wire`: the win itself and its outcome, one spelling
//!   each). Wins under a group's limit and purchases are written where they were reserved.
//! - [`group_commit`]: a campaign's wins that queue behind its running transaction share the
//!   next one; [`lanes`]: each campaign's queue and the tasks (lanes) that commit it, locked per
//!   campaign; a batch over several buckets takes the rows no other writer holds and leaves the
//!   rest for the next (the safety net while two instances write one campaign).
//! - [`transaction`]: the one transaction every win takes: a batch of one campaign's wins, or a
//!   purchase's items with its row; the guarded stock decrements ([`guard`]: the campaign's row
//!   or its buckets'), the deadlines, the group's limit, the rows ([`rows`]: a win's
//!   participation and its event, built in one place), the commit.
//! - [`error`]: why a write did not commit ([`WriteError`]), as the transaction reports it.
//! - [`in_doubt`]: a transaction whose COMMIT went unanswered, settled as soon as MySQL answers
//!   again; [`closing`]: committed wins' reservations closed in Redis.

mod closing;
pub mod error;
pub(crate) mod group_commit;
mod guard;
pub mod in_doubt;
mod lanes;
pub mod rows;
pub mod transaction;
pub mod writer;

pub use error::WriteError;
pub use rows::{NewParticipation, Written};
