//! The outbox participation path (DESIGN.md §6): validate, pass the Redis gate, write the win and
//! its event in one MySQL transaction, and compensate in Redis when anything after the gate fails.
//!
//! # Layout
//! - [`gate`]: typed wrapper around the Lua scripts in `lua/`.
//! - [`store`]: the participation transaction and participation lookups.
//! - [`service`]: the path itself, tying the two together with compensation.
//! - [`sold_out`]: a short in-process memo of sold-out campaigns, sparing Redis the flood.
//! - [`sync`]: the naive synchronous baseline kept for comparison (no Redis, no outbox).

pub mod gate;
pub mod service;
pub mod sold_out;
pub mod store;
pub mod sync;

pub use service::{Accepted, JoinError, JoinRequest, ParticipationService};
