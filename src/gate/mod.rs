//! The Redis gate in front of MySQL (docs/design.md §6): it keeps the flood (sold out, a second
//! join, a closed window) away from the database. MySQL stays the source of truth; whatever the
//! gate holds can be rebuilt from it. Nothing here knows the participation path that uses it.
//!
//! # Layout
//! - [`activity`]: whether a bucketed campaign is at rest (its buckets' passes skip it then).
//! - [`entry`]: who asks for how many units of which campaign, one typed value.
//! - [`connection`]: the Redis connection: one node or a cluster, plain or TLS.
//! - [`scripts`]: [`Gate`], the typed wrappers of the Lua scripts in `lua/`.
//! - [`cart`]: a purchase's items reserved all or none (§22).
//! - [`group`]: a group's per-user limit, checked with the stock (§22).
//! - [`queue`]: the waiting room's queue and admissions (`lua/queue.lua`).
//! - [`token_bucket`]: the rate limiter's per-user and per-IP token buckets
//!   (`lua/rate_limit.lua`; not a campaign's stock buckets, which are [`slot`]s).
//! - [`slot`]: which gate state a call addresses: a campaign's, or one stock bucket's (§21).
//! - [`transfer`]: units set aside in a stock bucket and given to another (§21).
//! - [`evalsha`]: the join's one Redis call, sent as one `EVALSHA` command.
//! - [`batch`]: a slot's joins that arrive while its call is in flight, in its next call.
//! - [`control`]: applying a committed live control (stock, pause, resume, close) once.
//! - [`audit`]: the drift audit's atomic read of a campaign's stock and open reservations, and
//!   its guarded repair of the stock.
//! - [`rebuild`]: writing a campaign's gate state from MySQL's (the loader in `upkeep` calls it).
//! - [`sold_out`]: a short in-process memo of sold-out campaigns, sparing Redis the flood.
//! - [`reached`]: whether a committed change reached the gate before its call answered.
//! - [`mailbox`]: the instances' heartbeats and mailboxes, for one writer per campaign (§23).
//! - [`bot_pass`]: each solution of the bot check accepted once (§16 "Bots at the door").

pub mod activity;
pub mod audit;
mod batch;
pub mod bot_pass;
pub mod cart;
pub mod connection;
pub mod control;
pub mod entry;
mod evalsha;
pub mod group;
pub mod mailbox;
pub mod queue;
pub mod reached;
pub mod rebuild;
pub mod scripts;
pub mod slot;
pub mod sold_out;
pub mod token_bucket;
pub mod transfer;

pub use control::{Applied, GateControl};
pub use entry::{AdmissionPass, Entry};
pub use group::{GroupCheck, Sibling};
pub use reached::Reached;
pub use scripts::{
    reservation_value, Committed, Decision, Gate, GateError, GateState, Release, Returned,
};
pub use slot::Slot;
