//! The participation path and the gate (docs/design.md §2.1, §2.2, §2.6, §6): exactly-N,
//! group commit, compensation, the gate's rebuild and its drift audit, the sync baseline,
//! `Idempotency-Key`, a win's lifecycle (§14) with its storms and a crash between a commit and
//! the gate, a live control (§15) across the same crash, and a SOLD_OUT that waits for the
//! reservations in flight.

mod at_rest;
mod bucket_rows;
mod bucket_writers;
mod buckets;
mod controls;
mod controls_crash;
mod controls_gate;
mod drift;
mod faults;
mod gate_batch;
mod gate_rebuild;
mod group_commit;
mod idempotency;
mod in_doubt;
mod in_flight;
mod lifecycle;
mod lifecycle_crash;
mod lifecycle_storm;
mod reconcile_pass;
mod return_markers;
mod row_hold;
mod rules;
mod sync_path;
mod writers;
