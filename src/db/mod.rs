//! MySQL access shared by every part of the service: opening pools with their session settings,
//! the deadline on every call, and what an error means.
//!
//! # Layout
//! - [`pool`]: connecting; per-connection session settings; closing connections that stopped
//!   answering.
//! - [`deadline`]: [`Db`] and [`Txn`], the pool and a transaction with `DB_STATEMENT_TIMEOUT_MS`
//!   on every call.
//! - [`error`]: what a MySQL error means (deadlock, lock wait, duplicate, connection lost,
//!   timeout).
//! - [`session`]: ending a session whose transaction's outcome is unknown, and waiting until
//!   it is gone.
//! - [`sql`]: statement helpers shared by the repositories.
//! - [`time`]: times as `DATETIME(6)` keeps them (the one conversion).

pub mod deadline;
pub mod error;
pub mod marker_cursor;
pub mod pool;
pub mod session;
pub mod sql;
pub mod time;

pub use deadline::{Bounded, Db, Txn};
