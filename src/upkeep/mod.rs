//! What keeps the Redis gate following MySQL (docs/design.md §2.1, §14, §15): MySQL is the source
//! of truth and the gate a copy that may be lost, lag or drift. This room rebuilds a campaign's
//! gate state from MySQL, hands the gate the units and controls MySQL owes it (the `gate_return`
//! and `gate_control` markers), audits each open campaign's gate against MySQL and repairs what it
//! can prove, and gives back the reservations a crashed instance left open.
//!
//! # Layout
//! - [`loader`]: [`GateLoader`](loader::GateLoader): rebuilding a campaign's gate state from
//!   MySQL, once per campaign at a time, and the owed returns a refused join reads.
//! - [`markers`]: the marker loop: a closed win's units and a live control that a crash or a
//!   Redis failure kept from the gate, given to it four times a second.
//! - [`drift`]: the drift audit, every few seconds on every instance.
//! - [`reconcile`]: giving back reservations that crashed instances left open.

pub mod drift;
pub mod loader;
pub mod markers;
pub mod reconcile;
