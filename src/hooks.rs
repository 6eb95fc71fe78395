//! The one test seam (docs/design.md §19): the points where a test may step into a running
//! application. The application builder takes one [`Hooks`] (`ApplicationBuilder::hooks`) and hands
//! it to every service that has a point; a production build holds [`NoHooks`], whose calls do
//! nothing. The implementations live with their users: the integration tests' hold points and
//! relay faults in `tests/integration/support/hooks.rs`, the crash points and the planted bug a
//! `test-hooks` binary arms from its environment in `startup::seam`.
//!
//! A point is named after the moment it marks. An async point may hold the caller (a test puts two
//! steps that real time could interleave in the order it needs); a sync point may stop the process
//! (a crash between two steps a crash can separate); [`Hooks::units_back_to_mysql`] is the one
//! point that may change what the service does, and only the planted bug of the proof's own test
//! changes it.

use std::sync::Arc;

use async_trait::async_trait;

#[async_trait]
pub trait Hooks: Send + Sync {
    // The relay.

    /// A relay worker is about to send the row with this message key.
    fn before_send(&self, _key: &str) {}

    /// The relay's claim loop has claimed rows and is about to hand them to the workers.
    async fn after_claim(&self) {}

    /// The relay's leadership is about to renew this instance's leases.
    async fn before_renewal(&self) {}

    // The join.

    /// A win's guarded stock decrement matched no row; the write is about to read why.
    async fn after_refused_decrement(&self) {}

    /// A batch of wins is about to send its COMMIT.
    async fn before_commit(&self) {}

    /// A win another instance handed over was written (or refused) here, on its campaign's
    /// writer; its outcome is about to be posted back to its origin.
    async fn before_handover_reply(&self) {}

    /// A steal's transfer between two bucket rows is about to send its COMMIT.
    async fn before_steal_commit(&self) {}

    // The upkeep.

    /// A gate rebuild is inside its MySQL snapshot, between reading the stock and reading the
    /// returned wins.
    async fn in_rebuild_snapshot(&self) {}

    /// A gate rebuild has filled the winners set and is about to write the campaign's state.
    async fn before_rebuild_load(&self) {}

    /// A join the gate refused is about to read what MySQL owes the gate.
    async fn before_owed_read(&self) {}

    /// A join the gate refused SOLD_OUT while reservations are in flight is about to wait for
    /// them and ask again.
    async fn before_in_flight_wait(&self) {}

    // A campaign's live controls.

    /// A live control that changed nothing is about to answer.
    async fn before_kept_control_answer(&self) {}

    /// A live control committed; the gate does not have it yet.
    async fn before_gate_control(&self) {}

    // A win's life.

    /// A state change that closed a win committed; its units are not yet back in the gate.
    fn before_gate_return(&self) {}

    /// The units a closed win gives back to MySQL's `remaining_stock`: its quantity.
    fn units_back_to_mysql(&self, quantity: i32) -> i32 {
        quantity
    }
}

/// The production application's hooks: none.
pub struct NoHooks;

impl Hooks for NoHooks {}

/// The hooks of an application nobody injected any into.
pub fn none() -> Arc<dyn Hooks> {
    Arc::new(NoHooks)
}
